"""Nothing lost when MongoDB goes away mid-session: records wait, retry, and spool at exit.

Uses a FerretDB of its own that the test stops and starts again on the same port and data.
"""

import asyncio
import os
from pathlib import Path

import pytest

from agent_configs.database import open_client
from devstack import DEFAULT_ROOT, Devstack
from devstack.services import reserve_port
from worker.records import SESSIONS, TURNS, Record, RecordWriter, replay_spool

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_URI")), reason="stops and restarts its own local FerretDB"
)

ONLY_FERRETDB = {"LIVEKIT_URL": "ws://unused", "LOCAL_LLM_URL": "http://unused/v1"}


def ferretdb(run_dir: Path, port: int) -> Devstack:
    return Devstack(DEFAULT_ROOT, run_dir=run_dir, mongo_port=port, environ=ONLY_FERRETDB)


async def wait_until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_records_written_while_the_database_is_down_arrive_after_it_returns(tmp_path: Path) -> None:
    port = reserve_port(0, "ferretdb", "UNUSED")
    first = ferretdb(tmp_path / "db", port)
    endpoints = first.start()
    client = open_client(endpoints.mongo_uri, timeout_ms=500)
    turns = client["records_test"][TURNS]
    writer = RecordWriter(client["records_test"], tmp_path / "spool", retry_initial_s=0.1, retry_max_s=0.5)
    try:
        writer.submit(Record(TURNS, "s1:0", {"turn_index": 0}))
        await wait_until(lambda: _exists(turns, "s1:0"))

        first.stop()
        writer.submit(Record(TURNS, "s1:1", {"turn_index": 1}))
        writer.submit(Record(SESSIONS, "s1", {"status": "ended"}))
        await asyncio.sleep(1.5)
        assert writer.backlog >= 1, "records should be waiting while the database is down"

        second = ferretdb(tmp_path / "db", port)
        second.start()
        try:
            await wait_until(lambda: _exists(turns, "s1:1"))
            await wait_until(lambda: _exists(client["records_test"][SESSIONS], "s1"))
            assert writer.backlog == 0
            assert await writer.close() is None
        finally:
            second.stop()
    finally:
        first.stop()
        await client.close()


async def test_records_left_at_exit_are_spooled_and_replayed(tmp_path: Path) -> None:
    port = reserve_port(0, "ferretdb", "UNUSED")
    stack = ferretdb(tmp_path / "db", port)
    endpoints = stack.start()
    client = open_client(endpoints.mongo_uri, timeout_ms=500)
    database = client["spool_test"]
    spool = tmp_path / "spool"
    writer = RecordWriter(database, spool, retry_initial_s=0.1, retry_max_s=0.2)
    try:
        stack.stop()
        writer.submit(Record(SESSIONS, "s2", {"status": "ended", "summary": "kept"}))
        writer.submit(Record(TURNS, "s2:0", {"turn_index": 0}))
        spooled = await writer.close(deadline_s=1.0)
        assert spooled is not None and len(spooled.read_text().splitlines()) == 2

        stack = ferretdb(tmp_path / "db", port)
        stack.start()
        assert await replay_spool(database, spool) == 2
        assert list(spool.glob("*")) == []
        session = await database[SESSIONS].find_one({"_id": "s2"})
        assert session["summary"] == "kept"
    finally:
        stack.stop()
        await client.close()


async def _exists(collection, record_id: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return await collection.find_one({"_id": record_id}) is not None
    except Exception:
        return False
