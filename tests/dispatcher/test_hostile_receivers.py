"""Receivers a dispatcher must survive: an answer that decodes to far more than the process may
hold (a gzip bomb), and a delivery during which the dispatcher keeps dying. Either way the
delivery ends delivered or failed and the other subscriptions' deliveries go on."""

import zlib
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import DELIVERIES
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
from tests.dispatcher.receiver import Answer, Receiver

BOMB_MB = 128
"""What the bomb decodes to (its gzip is ~130 KB): the k8s limit is 256 Mi."""


def gzip_bomb(decoded_mb: int) -> bytes:
    """`decoded_mb` MB of zeros, gzipped, made a megabyte at a time (the test holds ~130 KB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    megabyte = bytes(1 << 20)
    parts = [compressor.compress(megabyte) for _ in range(decoded_mb)]
    return b"".join([*parts, compressor.flush()])


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def test_a_gzip_bomb_answer_is_never_decoded_and_its_delivery_is_still_recorded(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    bomb = gzip_bomb(BOMB_MB)
    gzipped = {"content-encoding": "gzip", "content-type": "text/plain"}
    receiver.secrets = {"/accepts": [secret], "/refuses": [secret]}
    receiver.answers = {
        "/accepts": Answer(200, bomb, gzipped),
        "/refuses": Answer(500, bomb, gzipped),
    }
    receiver.start()
    accepts = await add_subscription(database, receiver.url("/accepts"), secret=secret)
    refuses = await add_subscription(database, receiver.url("/refuses"), secret=secret)
    dispatcher = await start_dispatcher(DISPATCHER_MAX_ATTEMPTS="2")
    before = peak_rss_mb(dispatcher.process.pid)
    events = session_events("sess_bomb", turns=1)
    await write_outbox(database, events)
    await until(all_done(database, 2 * len(events)), "every delivery settled", timeout=60)

    grown = peak_rss_mb(dispatcher.process.pid) - before
    assert grown < BOMB_MB / 8, f"peak memory grew {grown:.0f} MB for a {BOMB_MB} MB bomb"
    assert dispatcher.process.poll() is None
    delivered = await deliveries(database, subscription_id=accepts["_id"])
    assert [(d["status"], d["attempts"]) for d in delivered] == [("delivered", 1)] * len(events)
    failed = await deliveries(database, subscription_id=refuses["_id"])
    assert {(d["status"], d["attempts"], d["last_status"]) for d in failed} == {("failed", 2, 500)}
    assert {d["last_error"] for d in failed} == {"HTTP 500"}, "a compressed body is not shown"


async def test_the_start_of_a_refusals_plain_body_is_in_last_error_and_no_more_is_read(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    reason = "the signature does not verify: check the secret "
    receiver.secrets = {"/refuses": [secret]}
    receiver.answers = {"/refuses": Answer(400, (reason * 200_000).encode())}  # ~10 MB
    receiver.start()
    await add_subscription(database, receiver.url("/refuses"), secret=secret)
    await write_outbox(database, session_events("sess_refused", turns=0)[:1])
    dispatcher = await start_dispatcher(DISPATCHER_MAX_ATTEMPTS="1")
    before = peak_rss_mb(dispatcher.process.pid)
    await until(all_done(database, 1), "the delivery failed")

    (failed,) = await deliveries(database)
    assert failed["status"] == "failed" and failed["last_status"] == 400
    assert failed["last_error"].startswith(f"HTTP 400: {reason.strip()}")
    assert len(failed["last_error"]) <= 300
    assert peak_rss_mb(dispatcher.process.pid) - before < 8


async def test_a_delivery_that_keeps_killing_its_dispatcher_fails_for_good_while_others_flow(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    """The dispatcher is SIGKILLed during each attempt (as the OOM killer would): each attempt
    was counted before it was sent, so after DISPATCHER_MAX_ATTEMPTS the delivery is failed
    instead of being taken again forever by every replica."""
    secret = new_secret()
    receiver.secrets = {"/poison": [secret], "/fine": [secret]}
    receiver.answers = {"/poison": Answer(never=True)}
    receiver.start()
    poison = await add_subscription(
        database, receiver.url("/poison"), secret=secret, agent_ids=["poison-agent"]
    )
    fine = await add_subscription(
        database, receiver.url("/fine"), secret=secret, agent_ids=["support-agent-v1"]
    )
    poison_event = session_events("sess_poison", turns=0, agent_id="poison-agent")[0]
    await write_outbox(database, [poison_event])
    fine_events = session_events("sess_fine", turns=2)
    settings = {"DISPATCHER_MAX_ATTEMPTS": "2"}

    for attempt in (1, 2):
        dispatcher = await start_dispatcher(**settings)
        if attempt == 2:  # the poison's lease is still held by the dead first dispatcher
            await write_outbox(database, fine_events)
            await until(
                lambda: len(receiver.accepted("/fine")) == len(fine_events),
                "the other subscription's events delivered meanwhile",
            )

        def poison_in_flight(n: int = attempt) -> bool:
            sent = [r for r in receiver.all() if r.path == "/poison"]
            return len(sent) == n and sent[-1].ended is None

        await until(poison_in_flight, f"poison attempt {attempt} in flight")
        dispatcher.kill()
        await until(
            lambda: all(r.ended is not None for r in receiver.all()), "the receiver sees it die"
        )
        (head,) = await deliveries(database, subscription_id=poison["_id"])
        assert (head["status"], head["attempts"], head.get("last_error")) == (
            "pending",
            attempt,
            None,
        ), "counted before it was sent; no outcome ever recorded"

    last = await start_dispatcher(**settings)
    await until(
        lambda: database[DELIVERIES].find_one(
            {"subscription_id": poison["_id"], "status": "failed"}
        ),
        "the poison delivery failed for good",
    )
    (head,) = await deliveries(database, subscription_id=poison["_id"])
    assert head["attempts"] == 2 and "interrupted" in head["last_error"], head
    assert len([r for r in receiver.all() if r.path == "/poison"]) == 2, "never sent a third time"
    assert {d["status"] for d in await deliveries(database, subscription_id=fine["_id"])} == {
        "delivered"
    }
    assert last.process.poll() is None
    await until(
        lambda: last.metric('switchboard_webhook_failed_total{reason="attempts"}') == 1,
        "counted as failed after its attempts",
    )
