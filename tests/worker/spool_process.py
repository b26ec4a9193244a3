"""A no-loss writer in a process of its own, for the tests of spools that outlive their process.

python -m tests.worker.spool_process spool URI ROOT COLLECTION PREFIX COUNT
    submits COUNT records (ids PREFIX:0..), closes the writer (the database is away: they
    are spooled), prints `spooled <path>` and waits to be killed.
python -m tests.worker.spool_process replay URI ROOT COLLECTION
    replays ROOT once and prints `replayed <n>`.
"""

import asyncio
import sys
from pathlib import Path

from agent_configs.database import open_client
from agent_configs.writer import NoLossWriter, Record

DATABASE = "spool_adoption"


async def spool(uri: str, root: Path, collection: str, prefix: str, count: int) -> None:
    client = open_client(uri, timeout_ms=200)
    writer = NoLossWriter(
        client[DATABASE], root, collections={collection}, retry_initial_s=0.05, retry_max_s=0.1
    )
    for index in range(count):
        writer.submit(Record(collection, f"{prefix}:{index}", {"index": index, "by": prefix}))
    path = await writer.close(deadline_s=0.3)
    print(f"spooled {path}", flush=True)
    await asyncio.Event().wait()  # alive, holding its directory, until the test kills it


async def replay(uri: str, root: Path, collection: str) -> None:
    client = open_client(uri, timeout_ms=2000)
    writer = NoLossWriter(client[DATABASE], root, collections={collection})
    try:
        replayed = await writer.replay()
    finally:
        await writer.close(deadline_s=5.0)
        await client.close()
    print(f"replayed {replayed}", flush=True)


if __name__ == "__main__":
    command, uri, root, collection, *rest = sys.argv[1:]
    if command == "spool":
        asyncio.run(spool(uri, Path(root), collection, rest[0], int(rest[1])))
    else:
        asyncio.run(replay(uri, Path(root), collection))
