"""Spooled records outlive the process that spooled them: a process killed with SIGKILL leaves
its spool directory to whichever live process replays the same root next (a pod's replacement,
or any replica on the shared volume), never to two of them, and never while it still lives.

Real processes (tests/worker/spool_process.py) spool with the database unreachable, then replay
against a FerretDB of the test's own.
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from devstack import DEFAULT_ROOT, REPO_ROOT, Devstack
from devstack.services import reserve_port
from tests.worker.spool_process import DATABASE
from worker.records import OUTBOX, TURNS

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_URI")), reason="starts its own local FerretDB"
)

ONLY_FERRETDB = {"LIVEKIT_URL": "ws://unused", "LOCAL_LLM_URL": "http://unused/v1"}
RECORDS_EACH = 200


class Live:
    def __init__(self, uri: str, database: AsyncDatabase) -> None:
        self.uri = uri
        self.database = database


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    stack = Devstack(
        DEFAULT_ROOT,
        run_dir=tmp_path / "db",
        mongo_port=reserve_port(0, "ferretdb", "UNUSED"),
        environ=ONLY_FERRETDB,
    )
    endpoints = stack.start()
    client = open_client(endpoints.mongo_uri, timeout_ms=2000)
    try:
        yield Live(endpoints.mongo_uri, client[DATABASE])
    finally:
        await client.close()
        stack.stop()


def unreachable_uri() -> str:
    return f"mongodb://127.0.0.1:{reserve_port(0, 'nothing', 'UNUSED')}/"


async def run(*arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.worker.spool_process",
        *arguments,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def said(process: asyncio.subprocess.Process, word: str) -> str:
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    assert line.startswith(f"{word} "), f"the process said {line!r}"
    return line.split(" ", 1)[1].strip()


async def spooling(
    root: Path, collection: str, prefix: str
) -> tuple[asyncio.subprocess.Process, Path]:
    """A live process that has spooled RECORDS_EACH records into its directory of `root`."""
    process = await run(
        "spool", unreachable_uri(), str(root), collection, prefix, str(RECORDS_EACH)
    )
    try:
        return process, Path(await said(process, "spooled"))
    except BaseException:
        process.kill()
        await process.wait()
        raise


async def replayed_by_another_process(live: Live, root: Path, collection: str) -> int:
    process = await run("replay", live.uri, str(root), collection)
    try:
        count = int(await said(process, "replayed"))
        assert await asyncio.wait_for(process.wait(), 60) == 0
        return count
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_records_spooled_by_killed_processes_are_replayed_by_other_processes_exactly_once(
    tmp_path: Path, live: Live
) -> None:
    root = tmp_path / "shared-spool"
    writers: list[asyncio.subprocess.Process] = []
    try:
        files = []
        for prefix in ("a", "b", "c"):
            process, path = await spooling(root, TURNS, prefix)
            writers.append(process)
            files.append(path)

        # alive, they keep their spools: nobody else replays them (the order is theirs to keep)
        assert await replayed_by_another_process(live, root, TURNS) == 0
        assert all(path.is_file() for path in files)
        assert len({path.parent for path in files}) == 3, "one directory per process"

        for process in writers:
            process.kill()  # SIGKILL: no close, no replay of its own, its lock dropped by the kernel
            await process.wait()

        # two processes replay the root at once: each directory is adopted by one of them
        counts = await asyncio.gather(
            replayed_by_another_process(live, root, TURNS),
            replayed_by_another_process(live, root, TURNS),
        )

        assert sum(counts) == 3 * RECORDS_EACH, f"replayed {counts}: some record twice or never"
        turns = live.database[TURNS]
        assert await turns.count_documents({}) == 3 * RECORDS_EACH
        for prefix in ("a", "b", "c"):
            last = await turns.find_one({"_id": f"{prefix}:{RECORDS_EACH - 1}"})
            assert last == {
                "_id": f"{prefix}:{RECORDS_EACH - 1}",
                "index": RECORDS_EACH - 1,
                "by": prefix,
            }
        assert list(root.rglob("records-*")) == [], "every spool file is replayed and removed"
        assert list(root.glob("w-*")) == [], "an emptied directory of a process that is gone goes"
    finally:
        for process in writers:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_replay_while_the_database_is_still_away_leaves_the_orphaned_spool_for_the_next(
    tmp_path: Path, live: Live
) -> None:
    root = tmp_path / "shared-spool"
    process, path = await spooling(root, OUTBOX, "evt")
    process.kill()
    await process.wait()

    still_away = Live(unreachable_uri(), live.database)
    assert await replayed_by_another_process(still_away, root, OUTBOX) == 0
    assert path.is_file(), "put back whole: the database went away before any of it was written"

    assert await replayed_by_another_process(live, root, OUTBOX) == RECORDS_EACH
    assert await live.database[OUTBOX].count_documents({}) == RECORDS_EACH
    assert list(root.glob("w-*")) == []
