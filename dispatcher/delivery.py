"""Delivery: lease an ordering pair, POST its next delivery signed, record the outcome.

Leases. A dispatcher sends a delivery only while it holds the lease of its ordering pair
(subscription, ordering_key) (leases.py: atomic on FerretDB v1 as on MongoDB), so several
replicas never send one delivery, nor two of one pair, at the same time. The lease outlasts
the request (settings refuse a timeout that does not fit, and each request is cut to end a
second before its lease): a live dispatcher has always finished before another may take over.
A dispatcher killed mid-request loses nothing: its lease runs out and another replica sends
the delivery again (at least once; receivers dedupe by `webhook-id`). `lease_owner` and
`lease_until` on the delivery say who is sending it, for the deliveries list.

Ordering. Holding the pair, the dispatcher sends the pair's lowest pending `seq` and nothing
else; if that one is not due yet (waiting for its retry), the pair's later deliveries are
parked behind it (`next_attempt_at` moved to its own), so a receiver that is down costs one
look per pair per retry, not one per waiting event. When a delivery ends (delivered or
failed), its successor, if only parked, is made due at once.

Retries. Anything but a 2xx (timeouts and refused connections included; redirects are not
followed) is retried after a random wait between 0 and min(backoff_max, backoff_initial x
2^(attempt-1)) ("full jitter": replicas retrying a receiver that came back do not arrive all at
once), until `max_attempts` or `max_age_s` after the first failure; then the delivery is dead-
lettered as `failed`, with its last error, where the admin API shows it and can redeliver it.
A URL the egress policy refuses now (the policy changed since the subscription was written) is
never called: that delivery is failed at once, with the policy's reason.

Hostile answers. A response is never read whole: its status is what counts, and of a refusal
at most RESPONSE_PREFIX_BYTES of the body as sent (`aiter_raw`, never decoded) are read, for
`last_error`. Read whole (httpx decodes as it reads), five 130 KB gzip answers that decode to
128 MB each grew the process's peak memory by 1.1 GB, and the k8s limit is 256 Mi; read
bounded, by 3.5 MB (tests/dispatcher/test_hostile_receivers.py). An attempt is counted
(`attempts`, `attempt_started_at`) before its request is sent: a process killed during an
attempt (out of memory, say) has still spent it, so a delivery that kills whoever sends it is
failed after `max_attempts` instead of being taken again forever by every replica, and the
other deliveries go on.
"""

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from opentelemetry.trace import SpanKind, StatusCode
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs import telemetry, webhook_secrets
from agent_configs.cloudevents import DELIVERIES, OUTBOX, SUBSCRIPTIONS
from agent_configs.database import bson_now
from agent_configs.egress import EgressPolicy, EgressRefused
from dispatcher import metrics
from dispatcher.leases import Lease, PairLeases
from dispatcher.message import body_of, headers_of
from dispatcher.settings import DispatcherSettings

logger = logging.getLogger("switchboard.dispatcher.delivery")
_tracer = telemetry.tracer("switchboard.dispatcher")

ERROR_CHARS = 500
RESPONSE_PREFIX_BYTES = 1024
"""Of a refusal's body, at most this much is read (as sent: a compressed body stays small)."""
SHOWN_BODY_CHARS = 200
LEASE_MARGIN_S = 1.0
"""A request ends at least this long before its lease does."""
Pair = tuple[str, str]


def retry_delay(attempts: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_s, initial_s * 2^(attempts-1))]."""
    return rng.uniform(0.0, min(max_s, initial_s * 2 ** max(attempts - 1, 0)))


def _free_lease(now: datetime) -> dict[str, Any]:
    return {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}


def pair_of(delivery: dict[str, Any]) -> Pair:
    return delivery["subscription_id"], delivery["ordering_key"]


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    delivered: bool
    status: int | None
    error: str | None
    elapsed_ms: int


class Deliverer:
    """Takes due deliveries and sends them, several at once, never two of one ordering pair."""

    def __init__(
        self,
        database: AsyncDatabase,
        settings: DispatcherSettings,
        policy: EgressPolicy,
        owner: str,
        client: httpx.AsyncClient,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._db = database
        self._settings = settings
        self._policy = policy
        self.owner = owner
        self._client = client
        self._rng = rng or random.Random()
        self._in_flight: dict[Pair, asyncio.Task[None]] = {}
        self._leases = PairLeases(database, owner, settings.dispatcher_lease_s)
        self.wake = asyncio.Event()
        """Set when a slot frees or a pair moves on: the claim loop looks again at once."""

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- taking

    async def take_due(self) -> int:
        """Start sending due deliveries while there are free slots; returns how many started."""
        free = self._settings.dispatcher_max_in_flight - len(self._in_flight)
        if free <= 0:
            return 0
        now = bson_now()
        query = {"status": "pending", "next_attempt_at": {"$lte": now}, **_free_lease(now)}
        projection = {"_id": 1, "subscription_id": 1, "ordering_key": 1, "seq": 1}
        candidates = (
            await self._db[DELIVERIES]
            .find(query, projection)
            .sort([("next_attempt_at", 1), ("seq", 1)])
            .to_list(free * 4)
        )
        pairs = list(
            dict.fromkeys(pair_of(c) for c in candidates if pair_of(c) not in self._in_flight)
        )
        started = 0
        for pair in pairs:
            if started >= free:
                break
            lease = await self._leases.take(pair)
            if lease is None:
                continue  # another replica is sending this pair
            delivery = await self._head(pair, lease)
            if delivery is None:
                await self._leases.release(lease)
                continue
            self._in_flight[pair] = asyncio.create_task(
                self._run(delivery, lease), name=f"deliver {delivery['_id']}"
            )
            started += 1
        return started

    async def _head(self, pair: Pair, lease: Lease) -> dict[str, Any] | None:
        """With the pair's lease held: its lowest pending seq, if due (marked as leased, for the
        deliveries list); if not due, the pair's later deliveries are parked behind it."""
        subscription_id, ordering_key = pair
        head = await self._db[DELIVERIES].find_one(
            {"subscription_id": subscription_id, "ordering_key": ordering_key, "status": "pending"},
            sort=[("seq", 1)],
        )
        if head is None:
            return None
        now = bson_now()
        if head["next_attempt_at"] > now:
            await self._db[DELIVERIES].update_many(
                {
                    "subscription_id": subscription_id,
                    "ordering_key": ordering_key,
                    "status": "pending",
                    "seq": {"$gt": head["seq"]},
                    "next_attempt_at": {"$lt": head["next_attempt_at"]},
                },
                {"$set": {"next_attempt_at": head["next_attempt_at"]}},
            )
            return None
        await self._db[DELIVERIES].update_one(
            {"_id": head["_id"]}, {"$set": {"lease_owner": self.owner, "lease_until": lease.until}}
        )
        return head | {"lease_owner": self.owner, "lease_until": lease.until}

    async def _release(self, delivery_id: str, **changes: Any) -> None:
        await self._db[DELIVERIES].update_one(
            {"_id": delivery_id}, {"$set": {"lease_owner": None, "lease_until": None, **changes}}
        )

    # -- sending

    async def _run(self, delivery: dict[str, Any], lease: Lease) -> None:
        pair = pair_of(delivery)
        try:
            await self._deliver(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database went away mid-way, most likely: the lease runs out and the delivery
            # is taken again (at least once), so nothing is lost by giving up on it here.
            logger.exception(
                "delivery %s interrupted; it is retried when its lease ends", delivery["_id"]
            )
        finally:
            with contextlib.suppress(Exception):  # else it runs out by itself
                await self._leases.release(lease)
            self._in_flight.pop(pair, None)
            self.wake.set()

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        subscription = await self._db[SUBSCRIPTIONS].find_one({"_id": delivery["subscription_id"]})
        if subscription is None:
            await self._fail(
                delivery, "subscription_gone", "the subscription was deleted", attempted=False
            )
            return
        targeted = delivery.get("targeted", False)
        if subscription.get("status") != "enabled" and not targeted:
            # Paused: kept, in order, until it is enabled again; no attempt is spent.
            later = bson_now() + timedelta(seconds=self._settings.dispatcher_paused_recheck_s)
            await self._release(delivery["_id"], next_attempt_at=later)
            await self._park_successors(delivery, later)
            return
        event = await self._db[OUTBOX].find_one({"_id": delivery["event_id"]})
        if event is None:
            await self._fail(
                delivery, "event_gone", "the event is no longer in the outbox", attempted=False
            )
            return
        url = subscription["url"]
        now = bson_now()
        try:
            self._policy.check(url, _secret_env(subscription), field="url")
            secrets = webhook_secrets.signing_secrets(
                subscription, now, key=self._settings.webhook_encryption_key, policy=self._policy
            )
        except EgressRefused as exc:
            await self._fail(
                delivery, "egress", f"refused by the egress policy: {exc}", attempted=False
            )
            return
        except (
            webhook_secrets.SecretUnavailable
        ) as exc:  # a key or env var missing: the operator can fix it
            await self._retry(
                delivery, Attempt(False, None, f"no signing secret: {_describe(exc)}", 0)
            )
            return
        if not secrets:
            await self._retry(delivery, Attempt(False, None, "no signing secret", 0))
            return
        if delivery["attempts"] >= self._settings.dispatcher_max_attempts:
            # Only an attempt that never recorded its outcome (its process died), or a lowered
            # DISPATCHER_MAX_ATTEMPTS, leaves a delivery pending with no attempt left.
            await self._fail(delivery, "attempts", _out_of_attempts(delivery), attempted=False)
            return
        # The request must end while the lease holds, however long the reads above took.
        left = (delivery["lease_until"] - bson_now()).total_seconds() - LEASE_MARGIN_S
        if left <= 0:
            await self._release(delivery["_id"])
            return
        # The attempt joins the trace its event was made in (the session's, an admin
        # request's): the outbox event's `traceparent`, CloudEvents' tracing extension.
        with _tracer.start_as_current_span(
            "webhook.deliver",
            context=telemetry.context_of(event.get("traceparent")),
            kind=SpanKind.CLIENT,
            attributes={
                "cloudevents.event_id": event["_id"],
                "cloudevents.event_type": event.get("type", ""),
                "switchboard.subscription_id": str(delivery["subscription_id"]),
                "switchboard.attempt": delivery["attempts"] + 1,
            },
        ) as span:
            await self._count_attempt(delivery)
            attempt = await self._post(
                url, event, secrets, min(self._settings.dispatcher_timeout_s, left)
            )
            if span.is_recording():
                span.set_attribute("switchboard.delivered", attempt.delivered)
                if attempt.status is not None:
                    span.set_attribute("http.response.status_code", attempt.status)
                if not attempt.delivered:
                    span.set_status(StatusCode.ERROR, attempt.error or "not delivered")
            if attempt.delivered:
                await self._delivered(delivery, attempt)
            else:
                await self._retry(delivery, attempt)

    async def _count_attempt(self, delivery: dict[str, Any]) -> None:
        """Before the request is sent, so a process killed during it has still spent it.
        `attempt_started_at` stays set until the attempt's outcome is recorded."""
        await self._db[DELIVERIES].update_one(
            {"_id": delivery["_id"], "status": "pending"},
            {"$set": {"attempts": delivery["attempts"] + 1, "attempt_started_at": bson_now()}},
        )

    async def _post(
        self, url: str, event: dict[str, Any], secrets: list[str], timeout_s: float
    ) -> Attempt:
        body = body_of(event)
        headers = headers_of(event["_id"], body, secrets, bson_now())
        started = time.perf_counter()
        response: httpx.Response | None = None
        shown = ""
        try:
            # httpx's timeouts bound each phase (a receiver dripping bytes resets the read
            # timeout); the whole request is bounded here.
            async with (
                asyncio.timeout(timeout_s),
                self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=timeout_s
                ) as response,
            ):
                if not response.is_success and not response.is_redirect:
                    shown = _shown_body(response, await _body_start(response))
        except (httpx.HTTPError, TimeoutError) as exc:
            if response is None:  # no answer (an answer whose body broke off still counts)
                elapsed = time.perf_counter() - started
                metrics.ATTEMPTS.labels("network").inc()
                metrics.DELIVERY_SECONDS.labels("network").observe(elapsed)
                failure = (
                    f"timed out after {timeout_s:.1f}s"
                    if isinstance(exc, TimeoutError | httpx.TimeoutException)
                    else _describe(exc)
                )
                return Attempt(False, None, failure, round(elapsed * 1000))
        assert response is not None  # set, or the request failed and returned above
        elapsed = time.perf_counter() - started
        ok = response.is_success
        outcome = "delivered" if ok else "http_error"
        metrics.ATTEMPTS.labels(outcome).inc()
        metrics.DELIVERY_SECONDS.labels(outcome).observe(elapsed)
        error = None
        if not ok:
            error = f"HTTP {response.status_code}"
            if response.is_redirect:
                error += " (redirects are not followed: point the subscription at the final URL)"
            elif shown:
                error += f": {shown}"
        return Attempt(ok, response.status_code, error, round(elapsed * 1000))

    # -- outcomes

    async def _delivered(self, delivery: dict[str, Any], attempt: Attempt) -> None:
        now = bson_now()
        await self._db[DELIVERIES].update_one(
            {"_id": delivery["_id"], "status": "pending"},
            {
                "$set": {
                    "status": "delivered",
                    "delivered_at": now,
                    "attempts": delivery["attempts"] + 1,
                    "last_status": attempt.status,
                    "last_response_ms": attempt.elapsed_ms,
                    "last_error": None,
                    "lease_owner": None,
                    "lease_until": None,
                    "attempt_started_at": None,
                }
            },
        )
        metrics.DELIVERED.labels(delivery.get("event_type") or "unknown").inc()
        created = delivery.get("event_created_at") or delivery.get("created_at")
        if created is not None:
            metrics.EVENT_TO_DELIVERY_SECONDS.observe(max((now - created).total_seconds(), 0.0))
        await self._wake_successor(delivery)

    async def _retry(self, delivery: dict[str, Any], attempt: Attempt) -> None:
        now = bson_now()
        attempts = delivery["attempts"] + 1
        # The first failure may be an attempt that was interrupted (never recorded its outcome).
        earlier = delivery.get("retrying_since") or delivery.get("attempt_started_at")
        retrying_since = (earlier if delivery["attempts"] > 0 else None) or now
        settings = self._settings
        outcome = {
            "attempts": attempts,
            "last_status": attempt.status,
            "last_error": _bounded(attempt.error),
            "last_response_ms": attempt.elapsed_ms if attempt.status is not None else None,
            "retrying_since": retrying_since,
            "attempt_started_at": None,
        }
        if attempts >= settings.dispatcher_max_attempts:
            await self._fail(
                delivery, "attempts", attempt.error or "failed", attempted=True, outcome=outcome
            )
            return
        if (now - retrying_since).total_seconds() >= settings.dispatcher_max_age_s:
            await self._fail(
                delivery, "age", attempt.error or "failed", attempted=True, outcome=outcome
            )
            return
        wait = retry_delay(
            attempts,
            settings.dispatcher_backoff_initial_s,
            settings.dispatcher_backoff_max_s,
            self._rng,
        )
        await self._release(
            delivery["_id"], next_attempt_at=now + timedelta(seconds=wait), **outcome
        )
        await self._park_successors(delivery, now + timedelta(seconds=wait))
        logger.info(
            "delivery %s attempt %d failed (%s); next in %.1fs",
            delivery["_id"],
            attempts,
            attempt.error,
            wait,
        )

    async def _fail(
        self,
        delivery: dict[str, Any],
        reason: str,
        error: str,
        *,
        attempted: bool,
        outcome: dict[str, Any] | None = None,
    ) -> None:
        fields = outcome or {}
        fields = {
            **fields,
            "last_error": _bounded(error),
            "status": "failed",
            "attempt_started_at": None,
        }
        if not attempted:
            fields.setdefault("attempts", delivery["attempts"])
        await self._release(delivery["_id"], **fields)
        metrics.FAILED.labels(reason).inc()
        logger.warning("delivery %s dead-lettered (%s): %s", delivery["_id"], reason, error)
        await self._wake_successor(delivery)

    async def _park_successors(self, delivery: dict[str, Any], until: datetime) -> None:
        """The pair's later deliveries wait for this one's retry: none is looked at before."""
        subscription_id, ordering_key = pair_of(delivery)
        await self._db[DELIVERIES].update_many(
            {
                "subscription_id": subscription_id,
                "ordering_key": ordering_key,
                "status": "pending",
                "seq": {"$gt": delivery["seq"]},
                "next_attempt_at": {"$lt": until},
            },
            {"$set": {"next_attempt_at": until}},
        )

    async def _wake_successor(self, delivery: dict[str, Any]) -> None:
        """The pair's next delivery was parked behind this one: make it due now."""
        subscription_id, ordering_key = pair_of(delivery)
        successor = await self._db[DELIVERIES].find_one(
            {
                "subscription_id": subscription_id,
                "ordering_key": ordering_key,
                "status": "pending",
                "seq": {"$gt": delivery["seq"]},
            },
            sort=[("seq", 1)],
        )
        now = bson_now()
        if (
            successor is not None
            and successor["attempts"] == 0
            and successor["next_attempt_at"] > now
        ):
            await self._db[DELIVERIES].update_one(
                {"_id": successor["_id"], "next_attempt_at": successor["next_attempt_at"]},
                {"$set": {"next_attempt_at": now}},
            )

    # -- shutdown

    async def finish(self, grace_s: float) -> None:
        """Let requests in flight end within `grace_s`; cancel the rest and release every lease
        this process holds, so another replica takes them at once instead of after the lease."""
        tasks = list(self._in_flight.values())
        if tasks:
            logger.info("waiting up to %.0fs for %d deliveries in flight", grace_s, len(tasks))
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._leases.release_all()
        await self._db[DELIVERIES].update_many(
            {"lease_owner": self.owner}, {"$set": {"lease_owner": None, "lease_until": None}}
        )


def _secret_env(subscription: dict[str, Any]) -> str | None:
    secret = subscription.get("secret") or {}
    return secret.get("env") if secret.get("kind") == "env" else None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bounded(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_CHARS]


async def _body_start(response: httpx.Response) -> bytes:
    """At most RESPONSE_PREFIX_BYTES of the body as sent: `aiter_raw` never decodes, so a
    gzip bomb stays the size it was sent at (a network read adds at most 64 KB)."""
    kept = b""
    async for chunk in response.aiter_raw():  # the rest goes when the response is closed
        kept += chunk[: RESPONSE_PREFIX_BYTES - len(kept)]
        if len(kept) >= RESPONSE_PREFIX_BYTES:
            break
    return kept


def _shown_body(response: httpx.Response, start: bytes) -> str:
    """The start of a plain body on one line (a receiver's reason: "invalid signature"); a
    compressed one is not decoded, so nothing of it is shown."""
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return ""
    text = start.decode("utf-8", errors="replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:SHOWN_BODY_CHARS]


def _out_of_attempts(delivery: dict[str, Any]) -> str:
    if delivery.get("attempt_started_at") is not None:
        return (
            f"attempt {delivery['attempts']} was interrupted: the dispatcher sending it stopped "
            "before its answer was recorded (killed, out of memory, or shut down mid-request); "
            "not sent again"
        )
    return delivery.get("last_error") or "no attempt left"
