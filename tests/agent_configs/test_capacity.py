"""max_concurrent_sessions across workers: slots in the real database, claimed atomically."""

import asyncio
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.capacity import SLOTS, CapacityGuard, SessionSlot


async def test_two_workers_never_exceed_the_limit(database: AsyncDatabase) -> None:
    worker_a, worker_b = CapacityGuard(database), CapacityGuard(database)
    await worker_a.ensure_indexes()
    claims = await asyncio.gather(
        *(
            guard.claim("sales-agent-v1", 3, f"s{n}")
            for n, guard in enumerate([worker_a, worker_b] * 4)
        )
    )
    assert sorted(c for c in claims if c is not None) == [0, 1, 2]
    assert claims.count(None) == 5
    assert await worker_b.unavailable_reason("sales-agent-v1", 3) == "full: 3/3 sessions"


async def test_a_released_slot_is_free_again(database: AsyncDatabase) -> None:
    guard = CapacityGuard(database)
    await guard.ensure_indexes()
    slot = await guard.claim("support-agent-v1", 1, "first")
    assert slot == 0 and await guard.claim("support-agent-v1", 1, "second") is None
    await guard.release("support-agent-v1", 0, "first")
    assert await guard.claim("support-agent-v1", 1, "second") == 0


async def test_a_slot_of_a_killed_worker_is_taken_over_after_its_heartbeat_stops(
    database: AsyncDatabase,
) -> None:
    guard = CapacityGuard(database, stale_after_s=60)
    await guard.ensure_indexes()
    await guard.claim("support-agent-v1", 1, "killed")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await database[SLOTS].update_one({"session_id": "killed"}, {"$set": {"heartbeat_at": long_ago}})
    assert await guard.unavailable_reason("support-agent-v1", 1) is None
    assert await guard.claim("support-agent-v1", 1, "new") == 0


async def test_a_session_slot_moves_to_a_type_with_room_and_stays_when_the_type_is_full(
    database: AsyncDatabase,
) -> None:
    guard = CapacityGuard(database)
    held = SessionSlot(
        guard, "sess-1", "support-agent-v1", await guard.claim("support-agent-v1", 2, "sess-1")
    )
    assert await guard.claim("sales-agent-v1", 1, "sess-other") == 0

    assert await held.move_to("sales-agent-v1", 1) is False  # full: nothing changed
    assert (held.agent_id, held.slot) == ("support-agent-v1", 0)
    assert await guard.in_use("support-agent-v1") == 1

    await guard.release("sales-agent-v1", 0, "sess-other")
    assert await held.move_to("sales-agent-v1", 1) is True
    assert (held.agent_id, held.slot) == ("sales-agent-v1", 0)
    assert (await guard.in_use("support-agent-v1"), await guard.in_use("sales-agent-v1")) == (0, 1)

    assert await held.move_to("onboarding-agent-v1", None) is True  # no limit: no slot to hold
    assert held.slot is None and await guard.in_use("sales-agent-v1") == 0
