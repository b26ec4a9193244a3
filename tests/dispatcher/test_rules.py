"""The dispatcher's rules that need no receiver: backoff bounds, settings that would break the
lease guarantee, idempotent fan-out, a deleted subscription's deliveries dead-lettered unsent."""

import random

import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import DELIVERIES, OUTBOX, SUBSCRIPTIONS
from dispatcher.delivery import retry_delay
from dispatcher.fanout import fan_out_once
from dispatcher.settings import DispatcherSettings
from tests.dispatcher.conftest import (
    Start,
    add_subscription,
    all_done,
    deliveries,
    new_secret,
    session_events,
    until,
    write_outbox,
)
from tests.dispatcher.receiver import Receiver


def test_retry_waits_are_full_jitter_doubling_from_5_s_capped_at_an_hour() -> None:
    rng = random.Random(7)
    for attempts, cap in ((1, 5), (2, 10), (3, 20), (10, 2560), (11, 3600), (15, 3600)):
        waits = [retry_delay(attempts, 5.0, 3600.0, rng) for _ in range(500)]
        assert 0 <= min(waits) and max(waits) <= cap
        assert max(waits) > cap * 0.9, "the whole range is used"


def test_a_lease_that_does_not_outlast_the_request_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="DISPATCHER_LEASE_S"):
        DispatcherSettings(dispatcher_timeout_s=30, dispatcher_lease_s=30)
    DispatcherSettings()  # the defaults fit: 10 s requests under 30 s leases


async def test_fanning_out_an_event_again_makes_no_second_delivery(database: AsyncDatabase) -> None:
    await add_subscription(database, "http://127.0.0.1:9/hook", secret=new_secret())
    events = session_events("sess_twice", turns=1)
    await write_outbox(database, events)
    assert await fan_out_once(database, 100) == 3
    await database[OUTBOX].update_many({}, {"$set": {"fanned_out": False}})  # as after a crash
    await database[DELIVERIES].update_many({}, {"$set": {"status": "delivered"}})
    assert await fan_out_once(database, 100) == 0
    assert {d["status"] for d in await deliveries(database)} == {"delivered"}, (
        "nothing reset either"
    )
    assert await database[OUTBOX].count_documents({"fanned_out": True}) == 3


async def test_a_deleted_subscriptions_deliveries_fail_without_a_call(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    receiver.start()
    subscription = await add_subscription(database, receiver.url("/hook"), secret=new_secret())
    await write_outbox(database, session_events("sess_gone", turns=0))
    assert await fan_out_once(database, 100) == 2
    await database[SUBSCRIPTIONS].delete_one({"_id": subscription["_id"]})
    await start_dispatcher()
    await until(all_done(database, 2), "both settled")
    assert receiver.all() == []
    failed = await deliveries(database)
    assert {(d["status"], d["last_error"], d["attempts"]) for d in failed} == {
        ("failed", "the subscription was deleted", 0)
    }
