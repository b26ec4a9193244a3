"""The dispatcher against a real receiver: every event once, signed, in the documented shape;
a receiver that is down then up; a dispatcher killed mid-delivery; two at once; the egress
policy at send time; a graceful SIGTERM."""

import json
from collections import defaultdict

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs import cloudevents
from agent_configs.cloudevents import DELIVERIES, OUTBOX, EventType
from tests.cloudevents import CLOUDEVENT_KEYS
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


def seqs_in_arrival_order(
    receiver: Receiver, path: str, by_id: dict[str, dict]
) -> dict[str, list[int]]:
    """Per session, the seq of each event in the order the receiver first accepted it."""
    order: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for request in receiver.accepted(path):
        if request.webhook_id not in seen:
            seen.add(request.webhook_id)
            event = by_id[request.webhook_id]
            order[event["ordering_key"]].append(event["seq"])
    return order


async def test_each_event_arrives_once_signed_in_the_documented_shape_at_the_subscriptions_it_matches(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start, monkeypatch
) -> None:
    secret, old_secret, filtered_secret = new_secret(), new_secret(), new_secret()
    receiver.secrets = {
        "/all": [secret],
        "/old-secret-only": [old_secret],
        "/filtered": [filtered_secret],
    }
    receiver.start()
    everything = await add_subscription(database, receiver.url("/all"), secret=secret)
    # Rotated an hour ago: a receiver still holding the old secret verifies during the grace.
    rotated = await add_subscription(
        database, receiver.url("/old-secret-only"), secret=new_secret(), previous_secret=old_secret
    )
    filtered = await add_subscription(
        database,
        receiver.url("/filtered"),
        secret=filtered_secret,
        event_types=["session.ended"],
        agent_ids=["support-agent-v1"],
    )
    await add_subscription(database, receiver.url("/paused"), secret=new_secret(), status="paused")
    support = session_events("sess_support", turns=1)
    sales = session_events("sess_sales", turns=0, agent_id="sales-agent-v1")
    admin = [
        cloudevents.admin_event(
            EventType.AGENT_CREATED,
            "support-agent-v1",
            {"agent_id": "support-agent-v1", "version": 1},
            agent_id="support-agent-v1",
        )
    ]
    test_event = cloudevents.new_event(
        EventType.WEBHOOK_TEST,
        cloudevents.ADMIN_SOURCE,
        filtered["_id"],
        {"message": "test"},
        ordering_key=f"test:{filtered['_id']}",
        seq=0,
    )
    test_event["target_subscription_id"] = filtered["_id"]
    events = support + sales + admin
    await write_outbox(database, events + [test_event])
    await start_dispatcher()

    expected = 2 * len(events) + 2  # /all and /old-secret-only get every event; /filtered 2
    await until(all_done(database, expected), "every delivery done")
    assert not [r for r in receiver.all() if not r.verified], "every signature verifies"
    for path in ("/all", "/old-secret-only"):
        ids = sorted(r.webhook_id for r in receiver.accepted(path))
        assert ids == sorted(e["_id"] for e in events), path
    assert sorted(r.webhook_id for r in receiver.accepted("/filtered")) == sorted(
        [test_event["_id"], "sess_support:ended"]
    ), "type and agent filters; a test event reaches only its target"
    assert receiver.accepted("/paused") == []

    by_id = {e["_id"]: e for e in events}
    for request in receiver.accepted("/all"):
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert request.headers["webhook-id"] == request.body["id"]
        assert int(request.headers["webhook-timestamp"]) > 0
        assert set(request.body) == CLOUDEVENT_KEYS
        assert request.body == json.loads(
            json.dumps(cloudevents.cloudevent(by_id[request.body["id"]]))
        )
    (rotated_request,) = [
        r for r in receiver.accepted("/old-secret-only") if r.webhook_id == "sess_support:ended"
    ]
    assert len(rotated_request.headers["webhook-signature"].split(" ")) == 2, (
        "current and previous signatures"
    )

    done = await deliveries(database)
    assert {d["status"] for d in done} == {"delivered"}
    assert {d["attempts"] for d in done} == {1} and {d["last_status"] for d in done} == {200}
    assert all(isinstance(d["last_response_ms"], int) and d["delivered_at"] for d in done)
    assert {d["subscription_id"] for d in done} == {
        everything["_id"],
        rotated["_id"],
        filtered["_id"],
    }
    assert await database[OUTBOX].count_documents({"fanned_out": False}) == 0


async def test_a_receiver_down_then_up_gets_everything_in_order_per_session(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    receiver.secrets = {"/hook": [secret]}
    receiver.reserve_port()  # nothing listens yet: connection refused
    subscription = await add_subscription(database, receiver.url("/hook"), secret=secret)
    events = [e for n in range(3) for e in session_events(f"sess_{n}", turns=4)]
    await write_outbox(database, events)
    await start_dispatcher()

    async def refused_twice() -> bool:
        heads = await deliveries(database, seq=0)
        return len(heads) == 3 and all(
            d["attempts"] >= 2 and "Connect" in (d["last_error"] or "") for d in heads
        )

    await until(refused_twice, "each session's first event refused twice")
    receiver.answer = 503
    receiver.start()
    await until(lambda: len(receiver.all()) >= 3, "503s answered")
    receiver.answer = 200
    await until(
        all_done(database, len(events)),
        "everything delivered once the receiver is back",
        timeout=60,
    )

    done = await deliveries(database)
    assert {d["status"] for d in done} == {"delivered"}, [
        d["last_error"] for d in done if d["status"] != "delivered"
    ]
    by_id = {e["_id"]: e for e in events}
    order = seqs_in_arrival_order(receiver, "/hook", by_id)
    assert set(order) == {"sess_0", "sess_1", "sess_2"}
    for session, seqs in order.items():
        assert seqs == sorted(seqs) and len(seqs) == 6, (session, seqs)
    assert sorted(r.webhook_id for r in receiver.accepted()) == sorted(by_id), "each accepted once"
    assert any(d["attempts"] > 2 for d in done if d["subscription_id"] == subscription["_id"])


async def test_a_dispatcher_killed_mid_delivery_loses_nothing_and_never_overlaps_a_redelivery(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    receiver.secrets = {"/hook": [secret]}
    receiver.hold = 1  # the first request waits: the dispatcher is killed while it does
    receiver.start()
    await add_subscription(database, receiver.url("/hook"), secret=secret)
    events = [e for n in range(2) for e in session_events(f"sess_{n}", turns=3)]
    await write_outbox(database, events)
    first = await start_dispatcher()
    held = (await until(receiver.in_flight, "a request held by the receiver"))[0]
    first.kill()
    await until(lambda: held.ended is not None, "the receiver sees the killed sender hang up")
    assert held.hung_up
    receiver.release()
    await start_dispatcher()
    await until(
        all_done(database, len(events)), "everything delivered by the second dispatcher", timeout=60
    )

    assert receiver.overlaps() == [], "never two requests for one webhook-id at once"
    assert {d["status"] for d in await deliveries(database)} == {"delivered"}
    accepted = [r.webhook_id for r in receiver.accepted()]
    assert sorted(set(accepted)) == sorted(e["_id"] for e in events), "nothing lost"
    assert held.webhook_id in accepted, "the held event is sent again after the lease ends"
    by_id = {e["_id"]: e for e in events}
    for seqs in seqs_in_arrival_order(receiver, "/hook", by_id).values():
        assert seqs == sorted(seqs)


async def test_two_dispatchers_deliver_fifty_events_each_once_never_concurrently(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    receiver.secrets = {"/hook": [secret]}
    receiver.delay_s = 0.02  # requests last long enough to overlap, were anything wrong
    receiver.start()
    await add_subscription(database, receiver.url("/hook"), secret=secret)
    # Two slots each: neither can take every session's head alone, so both work.
    one = await start_dispatcher(DISPATCHER_MAX_IN_FLIGHT="2")
    two = await start_dispatcher(DISPATCHER_MAX_IN_FLIGHT="2")
    events = [e for n in range(5) for e in session_events(f"sess_{n}", turns=8)]
    assert len(events) == 50
    await write_outbox(database, events)
    await until(all_done(database, 50), "fifty deliveries", timeout=90)

    assert receiver.overlaps() == []
    assert sorted(r.webhook_id for r in receiver.accepted()) == sorted(e["_id"] for e in events), (
        "each once"
    )
    assert len(receiver.all()) == 50
    by_id = {e["_id"]: e for e in events}
    for seqs in seqs_in_arrival_order(receiver, "/hook", by_id).values():
        assert seqs == sorted(seqs)
    counts = [d.metric("switchboard_webhook_delivered_total") for d in (one, two)]
    assert sum(counts) == 50 and min(counts) > 0, counts


async def test_a_url_the_egress_policy_refuses_at_send_time_is_never_called(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    receiver.secrets = {"/hook": [secret]}
    receiver.start()
    elsewhere = Receiver(secrets={"/hook": [secret]}).start()
    try:
        allowed = await add_subscription(database, receiver.url("/hook"), secret=secret)
        refused = await add_subscription(database, elsewhere.url("/hook"), secret=secret)
        with_env_secret = await add_subscription(database, receiver.url("/hook"), env_secret=True)
        events = session_events("sess_egress", turns=1)
        await write_outbox(database, events)
        # The policy changed since the subscriptions were written: only the first port now,
        # and the env-named secret may no longer go there.
        dispatcher = await start_dispatcher(
            EGRESS_HOSTS=f'["127.0.0.1:{receiver.port}"]',
            EGRESS_SECRETS="{}",
        )
        await until(all_done(database, 3 * len(events)), "every delivery settled")

        assert elsewhere.all() == [], "the refused host was never called"
        for subscription in (refused, with_env_secret):
            failed = await deliveries(database, subscription_id=subscription["_id"])
            assert {d["status"] for d in failed} == {"failed"}
            assert all("egress policy" in d["last_error"] and d["attempts"] == 0 for d in failed), (
                failed
            )
        assert {
            d["status"] for d in await deliveries(database, subscription_id=allowed["_id"])
        } == {"delivered"}
        assert dispatcher.metric("switchboard_webhook_failed_total") == 2 * len(events)
    finally:
        elsewhere.stop()


async def test_sigterm_lets_a_request_in_flight_finish_then_releases_what_it_holds(
    database: AsyncDatabase, receiver: Receiver, start_dispatcher: Start
) -> None:
    secret = new_secret()
    receiver.secrets = {"/hook": [secret]}
    receiver.hold = 1
    receiver.start()
    await add_subscription(database, receiver.url("/hook"), secret=secret)
    events = session_events("sess_term", turns=2)
    await write_outbox(database, events)
    dispatcher = await start_dispatcher(DISPATCHER_SHUTDOWN_GRACE_S="2")
    held = (await until(receiver.in_flight, "a request in flight"))[0]
    dispatcher.process.send_signal(15)
    receiver.release()  # answered within the grace: recorded as delivered
    assert dispatcher.terminate() == 0, dispatcher.log_tail()

    assert held.status == 200 and not held.hung_up
    done = await database[DELIVERIES].find_one({"event_id": held.webhook_id})
    assert done["status"] == "delivered"
    assert await database[DELIVERIES].count_documents({"lease_owner": {"$ne": None}}) == 0, (
        "no lease left held"
    )
    assert len(receiver.accepted()) == 1, "nothing taken after SIGTERM"
