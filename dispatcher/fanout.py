"""Fan-out: each outbox event becomes one delivery per matching enabled subscription.

A delivery's `_id` is `<event_id>|<subscription_id>` and it is written with `$setOnInsert`, so
fanning an event out twice (two replicas, or a crash before `fanned_out` was set) never makes
a second delivery nor resets one already under way. `fanned_out` is set only after every
delivery of the event is written: a crash in between repeats the event's fan-out, harmlessly.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.cloudevents import DELIVERIES, OUTBOX, SUBSCRIPTIONS
from agent_configs.database import bson_now

logger = logging.getLogger("switchboard.dispatcher.fanout")


def delivery_id(event_id: str, subscription_id: str) -> str:
    return f"{event_id}|{subscription_id}"


def matches(subscription: dict[str, Any], event: dict[str, Any]) -> bool:
    """An enabled subscription whose type and agent filters let `event` through."""
    if subscription.get("status") != "enabled":
        return False
    types = subscription.get("event_types") or []
    if "*" not in types and event.get("type") not in types:
        return False
    agent_ids = subscription.get("agent_ids")
    return agent_ids is None or event.get("agent_id") in agent_ids


def recipients(
    event: dict[str, Any], subscriptions: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Who gets `event`: the one subscription it targets (`target_subscription_id`, e.g. "send
    test event": asked for explicitly, so whatever its filters), else every matching one."""
    target = event.get("target_subscription_id")
    if target is not None:
        return [s for s in subscriptions if s["_id"] == target]
    return [s for s in subscriptions if matches(s, event)]


def new_delivery(event: dict[str, Any], subscription_id: str, now: datetime) -> dict[str, Any]:
    """`targeted`: asked for by id (a test event), so sent even while the subscription is paused."""
    return {
        "event_id": event["_id"],
        "subscription_id": subscription_id,
        "event_type": event.get("type"),
        "ordering_key": event.get("ordering_key") or event["_id"],
        "seq": event.get("seq", 0),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "last_status": None,
        "last_response_ms": None,
        "delivered_at": None,
        "created_at": now,
        "event_created_at": event.get("created_at") or now,
        "targeted": event.get("target_subscription_id") == subscription_id,
    }


async def fan_out_once(database: AsyncDatabase, batch: int) -> int:
    """Fan out up to `batch` events, oldest first; returns how many deliveries were made."""
    events = await database[OUTBOX].find({"fanned_out": False}).sort("created_at", 1).to_list(batch)
    if not events:
        return 0
    subscriptions = await database[SUBSCRIPTIONS].find({}).to_list(None)
    made = 0
    for event in events:
        now = bson_now()
        for subscription in recipients(event, subscriptions):
            made += await _insert_once(database, new_delivery(event, subscription["_id"], now))
        await database[OUTBOX].update_one({"_id": event["_id"]}, {"$set": {"fanned_out": True}})
    if made:
        logger.debug("fanned out %d events into %d deliveries", len(events), made)
    return made


async def _insert_once(database: AsyncDatabase, delivery: dict[str, Any]) -> int:
    _id = delivery_id(delivery["event_id"], delivery["subscription_id"])
    try:
        result = await database[DELIVERIES].update_one(
            {"_id": _id}, {"$setOnInsert": delivery}, upsert=True
        )
    except DuplicateKeyError:  # another replica's upsert of the same delivery won the race
        return 0
    return 1 if result.upserted_id is not None else 0
