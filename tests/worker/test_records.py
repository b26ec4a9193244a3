"""Nothing lost: records wait and retry while MongoDB is away, spool at exit, replay at the
next start; what MongoDB cannot take is dead-lettered whole, never blocking the rest.

Each test uses a FerretDB of its own (stopped and started again on the same port and data
where the test needs an outage), or a client on a port nothing listens on.
"""

import asyncio
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from bson import json_util
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.writer import _claimed
from devstack import DEFAULT_ROOT, Devstack
from devstack.services import reserve_port
from worker import metrics, server
from worker.records import (
    DEAD_LETTERS,
    HEARTBEATS,
    SESSIONS,
    TURNS,
    Record,
    RecordWriter,
    replay_spool,
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_URI")), reason="stops and restarts its own local FerretDB"
)

ONLY_FERRETDB = {"LIVEKIT_URL": "ws://unused", "LOCAL_LLM_URL": "http://unused/v1"}


def ferretdb(run_dir: Path, port: int) -> Devstack:
    return Devstack(DEFAULT_ROOT, run_dir=run_dir, mongo_port=port, environ=ONLY_FERRETDB)


async def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_records_written_while_the_database_is_down_arrive_after_it_returns(
    tmp_path: Path,
) -> None:
    port = reserve_port(0, "ferretdb", "UNUSED")
    first = ferretdb(tmp_path / "db", port)
    endpoints = first.start()
    client = open_client(endpoints.mongo_uri, timeout_ms=500)
    turns = client["records_test"][TURNS]
    writer = RecordWriter(
        client["records_test"], tmp_path / "spool", retry_initial_s=0.1, retry_max_s=0.5
    )
    try:
        writer.submit(Record(TURNS, "s1:0", {"turn_index": 0}))
        await wait_until(lambda: _exists(turns, "s1:0"))

        first.stop()
        retried_before = retries_so_far()
        writer.submit(Record(TURNS, "s1:1", {"turn_index": 1}))
        writer.submit(Record(SESSIONS, "s1", {"status": "ended"}))

        async def retried() -> bool:  # a write failed against the stopped database
            return retries_so_far() > retried_before

        await wait_until(retried)
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


async def _exists(collection, record_id: str) -> bool:
    try:
        return await collection.find_one({"_id": record_id}) is not None
    except Exception:
        return False


# -- the no-loss writer (issue 10, section 1) ------------------------------------------------


@pytest.fixture
async def live(tmp_path: Path):
    """A FerretDB of the test's own (it starts in ~0.1 s) and a database on it."""
    stack = ferretdb(tmp_path / "live-db", reserve_port(0, "ferretdb", "UNUSED"))
    endpoints = stack.start()
    client = open_client(endpoints.mongo_uri, timeout_ms=1000)
    try:
        yield client["writer_test"]
    finally:
        await client.close()
        stack.stop()


def unreachable_database():
    """A client on a port nothing listens on: every write is a ServerSelectionTimeoutError."""
    return open_client(
        f"mongodb://127.0.0.1:{reserve_port(0, 'nothing', 'UNUSED')}/", timeout_ms=100
    )


def retries_so_far() -> float:
    return metrics.RECORD_WRITE_RETRIES._value.get()


async def test_the_record_being_written_when_the_job_ends_is_spooled_with_the_others(
    tmp_path: Path,
) -> None:
    client = unreachable_database()
    writer = RecordWriter(client["down"], tmp_path / "spool", retry_initial_s=0.05, retry_max_s=0.1)
    try:
        before = retries_so_far()
        for index in range(5):
            writer.submit(Record(TURNS, f"held:{index}", {"turn_index": index}))
        # the writer task holds the first record, retrying it
        await wait_until(async_true(lambda: retries_so_far() > before), timeout=10)
        spooled = await writer.close(deadline_s=0.3)
        assert spooled is not None
        ids = [Record.from_json(line).record_id for line in spooled.read_text().splitlines()]
        assert ids == [f"held:{index}" for index in range(5)]
    finally:
        await client.close()


async def test_records_mongodb_cannot_take_are_dead_lettered_whole_and_the_next_ones_are_written(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    spool = tmp_path / "spool"
    writer = RecordWriter(live, spool, retry_initial_s=0.05, retry_max_s=0.1)
    huge = "x" * (17 * 1024 * 1024)
    writer.submit(Record(TURNS, "t:0", {"turn_index": 0}))
    writer.submit(Record(SESSIONS, "too-large", {"transcript": huge}))  # DocumentTooLarge
    writer.submit(Record(TURNS, "t:1", {"turn_index": 1}))
    writer.submit(Record(TURNS, "unencodable", {"fields": {"answer": object()}}))  # InvalidDocument
    writer.submit(Record(TURNS, "t:2", {"turn_index": 2}))
    await wait_until(lambda: _exists(live[TURNS], "t:2"), timeout=20)
    await wait_until(lambda: _count(live[DEAD_LETTERS], 2), timeout=20)
    assert {d["_id"] for d in await live[TURNS].find().to_list()} == {"t:0", "t:1", "t:2"}

    letters = {d["record_id"]: d for d in await live[DEAD_LETTERS].find().to_list()}
    too_large = letters["too-large"]
    assert too_large["collection"] == SESSIONS and too_large["kind"] == "unencodable"
    assert "more than" in too_large["reason"] and len(too_large["preview"]) <= 2000
    kept = json_util.loads((Path(too_large["spool_dir"]) / too_large["file"]).read_text())
    assert kept["fields"]["transcript"] == huge  # nothing of it lost
    assert letters["unencodable"]["error"] == "InvalidDocument"
    assert await writer.close(deadline_s=2) is None


async def test_values_from_the_model_that_mongodb_refuses_are_stored_changed_not_lost(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    writer = RecordWriter(live, tmp_path / "spool")
    model_output = {
        "big": 2**70,
        "lone": "a\udfffb",
        "keys": {"a.b": 1, "$where": 2, 3: "three"},
        "nan": float("nan"),
        "inf": float("inf"),
        "matrix": [[1, 2], [3]],
    }
    writer.submit(Record(TURNS, "failed:0", {"status": "failed", "fields": model_output}))
    writer.submit(Record(TURNS, "after", {"turn_index": 1}))
    await wait_until(lambda: _exists(live[TURNS], "after"), timeout=20)
    stored = (await live[TURNS].find_one({"_id": "failed:0"}))["fields"]
    assert stored["big"] == str(2**70) and stored["lone"] == "a\ufffdb"
    assert stored["keys"] == {"a\uff0eb": 1, "\uff04where": 2, "3": "three"}
    assert stored["nan"] == "NaN" and stored["inf"] == "Infinity"
    assert stored["matrix"] == ["[1, 2]", "[3]"]
    assert await live[DEAD_LETTERS].count_documents({}) == 0
    await writer.close(deadline_s=2)


async def test_a_record_the_server_rejects_is_tried_three_times_then_dead_lettered(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    writer = RecordWriter(live, tmp_path / "spool", retry_initial_s=0.05)
    writer.submit(Record(TURNS, "rejected", {"$bad": 1}))  # WriteError: key must not start with '$'
    writer.submit(Record(TURNS, "behind", {"turn_index": 0}))
    await wait_until(lambda: _exists(live[TURNS], "behind"), timeout=10)
    await wait_until(lambda: _count(live[DEAD_LETTERS], 1), timeout=10)
    letter = await live[DEAD_LETTERS].find_one({"record_id": "rejected"})
    assert (
        letter["kind"] == "rejected" and letter["error"] == "WriteError" and letter["attempts"] == 3
    )
    await writer.close(deadline_s=2)


def spool_line(collection: str, record_id: str, **fields: object) -> str:
    return Record(collection, record_id, dict(fields) or {"turn_index": 0}).to_json() + "\n"


def private_spool(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


async def test_a_poison_spool_file_is_quarantined_and_the_files_after_it_replay(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    spool = private_spool(tmp_path / "spool")
    (spool / "records-a.jsonl").write_text(spool_line(TURNS, "a:0", turn_index=0))
    poison = (
        b'{"collection": "turns", "record_id": \n\xff\xfe not json\n'
        + spool_line(TURNS, "b:0").encode()
    )
    (spool / "records-b.jsonl").write_bytes(poison)
    (spool / "records-c.jsonl").write_text(spool_line(SESSIONS, "c", status="ended"))
    assert await replay_spool(live, spool) == 3
    assert await _exists(live[TURNS], "a:0") and await _exists(live[TURNS], "b:0")
    assert await _exists(live[SESSIONS], "c")
    assert sorted(p.name for p in spool.iterdir()) == ["quarantine-records-b.jsonl"]
    assert (spool / "quarantine-records-b.jsonl").read_bytes() == poison  # kept whole
    letter = await live[DEAD_LETTERS].find_one({"kind": "quarantined"})
    assert letter["file"] == "quarantine-records-b.jsonl" and "line 1" in letter["reason"]
    assert await replay_spool(live, spool) == 0  # and it blocks nothing later


async def test_spool_files_left_by_a_dead_process_are_replayed(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    spool = private_spool(tmp_path / "spool")
    (spool / f"records-claimed.replaying-{dead.pid}").write_text(spool_line(TURNS, "orphan:0"))
    (spool / f"records-half.partial-{dead.pid}").write_text(spool_line(TURNS, "orphan:1"))
    (spool / f"records-busy.replaying-{os.getpid()}").write_text(spool_line(TURNS, "not-mine"))
    _claimed.add(
        spool / f"records-busy.replaying-{os.getpid()}"
    )  # a replay of this process, under way
    try:
        assert await replay_spool(live, spool) == 2
    finally:
        _claimed.clear()
    assert await _exists(live[TURNS], "orphan:0") and await _exists(live[TURNS], "orphan:1")
    assert not await _exists(live[TURNS], "not-mine")


async def test_a_planted_spool_line_naming_api_keys_is_not_written(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    spool = private_spool(tmp_path / "spool")
    planted = spool_line("api_keys", "attacker", role="admin", hash="known")
    (spool / "records-planted.jsonl").write_text(planted + spool_line(TURNS, "real:0"))
    assert await replay_spool(live, spool) == 1
    assert await live["api_keys"].count_documents({}) == 0
    assert await _exists(live[TURNS], "real:0")
    letter = await live[DEAD_LETTERS].find_one({"kind": "quarantined"})
    assert "'api_keys' is not one this writer writes" in letter["reason"]


async def test_the_spool_dir_is_private_and_a_shared_one_is_refused(tmp_path: Path) -> None:
    client = unreachable_database()
    try:
        own = tmp_path / "spool"
        writer = RecordWriter(client["down"], own, retry_initial_s=0.05)
        writer.submit(Record(TURNS, "m:0", {"turn_index": 0}))
        spooled = await writer.close(deadline_s=0.2)
        assert spooled is not None and spooled.parent.parent == own  # this process's directory
        assert stat.S_IMODE(own.stat().st_mode) == 0o700
        assert stat.S_IMODE(spooled.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(spooled.stat().st_mode) == 0o600

        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(foreign, 65534, 65534)
        for refused in (shared, foreign) if os.geteuid() == 0 else (shared,):
            writer = RecordWriter(client["down"], refused, retry_initial_s=0.05)
            writer.submit(Record(TURNS, "m:1", {"turn_index": 1}))
            spooled = await writer.close(deadline_s=0.2)
            assert spooled is not None and spooled.parent != refused
            assert list(refused.iterdir()) == []
            assert stat.S_IMODE(spooled.parent.stat().st_mode) == 0o700
            spooled.unlink()
    finally:
        await client.close()


async def test_heartbeats_reach_the_database_while_the_record_queue_is_stuck(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    down = unreachable_database()
    stuck = RecordWriter(down["down"], tmp_path / "spool", retry_initial_s=0.05)
    stuck.submit(Record(TURNS, "waiting", {"turn_index": 0}))

    class Slot:
        async def heartbeat(self) -> None:
            pass

    services = SimpleNamespace(
        settings=SimpleNamespace(session_heartbeat_s=0.2), database=live, writer=stuck
    )
    beating = asyncio.create_task(server._heartbeat(services, Slot(), "beating"))  # type: ignore[arg-type]

    async def beaten() -> bool:
        return await live[HEARTBEATS].find_one({"_id": "beating"}) is not None

    try:
        await wait_until(beaten, timeout=10)
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await stuck.close(deadline_s=0.1)
        await down.close()


async def test_beats_never_cost_the_session_record_a_field(
    tmp_path: Path, live: AsyncDatabase
) -> None:
    """FerretDB v1 applies an update as read, change, write back: a beat that raced the start
    record's upsert on the same document left it with nothing but the beat (1 room in 30 in
    the scaling test). Beats now live in their own document; hammer both at once."""

    class Slot:
        async def heartbeat(self) -> None:
            pass

    services = SimpleNamespace(settings=SimpleNamespace(session_heartbeat_s=0.05), database=live)
    writer = RecordWriter(live, tmp_path / "spool")
    ids = [f"race-{n}" for n in range(20)]
    beating = [asyncio.create_task(server._heartbeat(services, Slot(), i)) for i in ids]  # type: ignore[arg-type]
    try:
        for i in ids:
            writer.submit(
                Record(SESSIONS, i, {"session_id": i, "room": f"room-{i}", "status": "active"})
            )
            for turn in range(5):
                writer.submit(Record(SESSIONS, i, {f"turn_{turn}": True}))
        assert await writer.close(deadline_s=60) is None
    finally:
        for task in beating:
            task.cancel()
        await asyncio.gather(*beating, return_exceptions=True)
    records = {d["_id"]: d async for d in live[SESSIONS].find({"_id": {"$in": ids}})}
    expected = {"room", "status", *(f"turn_{turn}" for turn in range(5))}
    incomplete = [i for i in ids if not expected <= set(records.get(i, {}))]
    assert incomplete == [], "session records that lost fields to a heartbeat"
    assert await live[HEARTBEATS].count_documents({"_id": {"$in": ids}}) == len(ids)


def async_true(check):
    async def condition() -> bool:
        return bool(check())

    return condition


async def _count(collection, at_least: int) -> bool:
    return await collection.count_documents({}) >= at_least
