"""Webhook subscriptions: where events go, which ones, signed with which secret; their deliveries.

A subscription names a URL (the egress policy must allow it: 422 naming `url`), an event-type
filter (`["*"]` or types of agent_configs/cloudevents.py), an agent filter (`agent_ids`, null =
every agent type) and a status (`enabled` / `paused`: a paused subscription's deliveries wait,
in order, until it is enabled again). Its signing secret is either generated here (`whsec_...`,
answered once, by create and rotate-secret, and stored only as ciphertext under
WEBHOOK_ENCRYPTION_KEY) or an env var the dispatcher reads (`secret_env`, which the egress
policy must allow for the URL's host, as if it were sent there). GET never shows a secret: its
kind, its first characters (`whsec_ab12`) or its env var's name.

PATCH requires If-Match (428 without, 412 when stale): it is the one write based on what was
read. Every change bumps `version`, answered as the ETag; a rotation racing another change (two
rotations at once) is refused as a 409, so no 200 ever answers a secret that another write
replaced. Nothing is written when a request is refused.

DELETE removes the subscription; its deliveries stay as they are and the dispatcher dead-letters
the pending ones when it reaches them ("the subscription was deleted"), without calling anyone.
`test` puts a `webhook.test` event in the outbox aimed at this subscription only
(`target_subscription_id`), sent whatever its filters and even while paused.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import uuid4

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import WithJsonSchema
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from admin_api.auth import ApiKey, Role
from admin_api.deps import AdminKey, ReaderKey, RequiredIfMatch, ServicesDep
from admin_api.events import EventType as AuditType
from admin_api.origins import origin
from admin_api.problems import (
    FieldProblem,
    ProblemError,
    etag_for,
    invalid_request,
    problem_responses,
    validation_problem,
)
from admin_api.routes import API_V1
from admin_api.routes.sessions import cursor_problem
from admin_api.services import Services
from admin_api.storage import InvalidCursor, encode_cursor, newest_first_query
from admin_api.version_claims import VersionTaken, save_next_version
from agent_configs import webhook_secrets
from agent_configs.cloudevents import ADMIN_SOURCE, DELIVERIES, SUBSCRIPTIONS, EventType, new_event
from agent_configs.database import bson_now, database_errors
from agent_configs.egress import EgressRefused
from agent_configs.models import EnvVarName, HttpUrl, Slug, Text

logger = logging.getLogger("switchboard.admin_api.webhooks")

router = APIRouter(prefix=f"{API_V1}/webhooks", tags=["webhooks"])

ALL_EVENTS = "*"
MAX_AGENT_IDS = 200
MAX_GRACE_S = 7 * 86_400
DEFAULT_GRACE_S = 86_400
MAX_PAGE = 200

SubscriptionId = Annotated[str, Path(pattern=r"^sub_[0-9a-f]{24}$")]
DeliveryId = Annotated[str, Path(min_length=1, max_length=300)]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Status = Literal["enabled", "paused"]
DeliveryStatus = Literal["pending", "delivered", "failed"]

READ_PROBLEMS = problem_responses(401, 403, 404, 422, 503)


def _known_event_type(value: str) -> str:
    if value != ALL_EVENTS and value not in EventType._value2member_map_:
        known = ", ".join(t.value for t in EventType)
        raise ValueError(f"is not an event type: use {ALL_EVENTS} or one of {known}")
    return value


EventTypeFilter = Annotated[
    str,
    AfterValidator(_known_event_type),
    WithJsonSchema({"type": "string", "enum": [ALL_EVENTS, *(t.value for t in EventType)]}),
]
EventTypes = Annotated[list[EventTypeFilter], Field(min_length=1, max_length=len(EventType) + 1)]
AgentIds = Annotated[list[Slug], Field(max_length=MAX_AGENT_IDS)]


# -- bodies and answers ---------------------------------------------------------------------


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    description: Annotated[Text, Field(max_length=500)] = ""
    event_types: EventTypes = Field(default_factory=lambda: [ALL_EVENTS])
    agent_ids: AgentIds | None = Field(
        default=None, description="Only these agent types' events; null = all."
    )
    status: Status = "enabled"
    secret_env: EnvVarName | None = Field(
        default=None,
        description="Sign with this env var's value (read by the dispatcher; EGRESS_SECRETS must allow it "
        "for the URL's host) instead of a generated secret.",
    )


class SubscriptionPatch(BaseModel):
    """Given fields replace the stored ones; `agent_ids: null` means every agent type again."""

    model_config = ConfigDict(extra="forbid")

    # Absent = unchanged (the None defaults are never stored: only fields given are applied),
    # and null is no value for these: a 422 naming the field, as for any wrong type.
    url: HttpUrl = Field(default=None)  # type: ignore[assignment]
    description: Annotated[Text, Field(max_length=500)] = Field(default=None)  # type: ignore[assignment]
    event_types: EventTypes = Field(default=None)  # type: ignore[arg-type]
    agent_ids: AgentIds | None = None
    status: Status = Field(default=None)  # type: ignore[arg-type]


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(
        default=DEFAULT_GRACE_S,
        ge=0,
        le=MAX_GRACE_S,
        description="How long the current secret stays valid too (both signatures are sent); 0 = not at all.",
    )
    secret_env: EnvVarName | None = Field(
        default=None,
        description="Switch to this env var's value instead of a new generated secret.",
    )


class SigningSecret(BaseModel):
    """Which secret signs, never the secret: `prefix` for a generated one, `env` for an env var."""

    kind: Literal["generated", "env"]
    prefix: str | None = None
    env: str | None = None
    valid_until: datetime | None = Field(
        default=None, description="Previous secret only: end of its grace."
    )


class LastDelivery(BaseModel):
    status: DeliveryStatus
    event_type: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None


class Subscription(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    agent_ids: list[str] | None
    status: Status
    signing_secret: SigningSecret
    previous_signing_secret: SigningSecret | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    last_delivery: LastDelivery | None = None


class SubscriptionWithSecret(Subscription):
    secret: str | None = Field(
        description="The generated `whsec_...` secret: shown in this answer only, never again. "
        "null when the subscription signs with an env var."
    )


class SubscriptionPage(BaseModel):
    items: list[Subscription]
    next_cursor: str | None = None


class Delivery(BaseModel):
    id: str
    event_id: str
    event_type: str | None = None
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    last_status: int | None = None
    last_response_ms: int | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = None


class TestEventAccepted(BaseModel):
    event_id: str
    subscription_id: str


class RedeliverCount(BaseModel):
    redelivered: int = Field(description="Failed deliveries made pending again.")


# -- documents -> answers ---------------------------------------------------------------------


def _signing(stored: dict[str, Any]) -> SigningSecret:
    return SigningSecret(
        kind=stored["kind"],
        prefix=stored.get("prefix"),
        env=stored.get("env"),
        valid_until=stored.get("valid_until"),
    )


def _subscription(document: dict[str, Any], last: dict[str, Any] | None = None) -> Subscription:
    previous = document.get("previous_secret")
    if previous is not None and previous["valid_until"] <= bson_now():
        previous = None  # its grace is over: the dispatcher no longer signs with it
    return Subscription(
        id=document["_id"],
        url=document["url"],
        description=document.get("description", ""),
        event_types=document["event_types"],
        agent_ids=document.get("agent_ids"),
        status=document["status"],
        signing_secret=_signing(document["secret"]),
        previous_signing_secret=_signing(previous) if previous else None,
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        version=document["version"],
        last_delivery=LastDelivery.model_validate(last) if last else None,
    )


def _as_read_by(caller: ApiKey, subscription: Subscription) -> Subscription:
    """An admin reads the URL it wrote; a viewer its origin only (as the audit shows the host):
    a receiver's path is often a capability."""
    if caller.role == Role.ADMIN:
        return subscription
    return subscription.model_copy(update={"url": origin(subscription.url)})


def _delivery(document: dict[str, Any]) -> Delivery:
    return Delivery.model_validate({**document, "id": document["_id"]})


# -- the collections ---------------------------------------------------------------------------


def _subscriptions(services: Services) -> AsyncCollection:
    return services.database[SUBSCRIPTIONS]


def _deliveries(services: Services) -> AsyncCollection:
    return services.database[DELIVERIES]


def _not_found(subscription_id: str) -> ProblemError:
    return ProblemError(
        404,
        "webhook-not-found",
        "Webhook subscription not found",
        f"no subscription '{subscription_id}'",
    )


def _conflict(subscription_id: str, expected: int, current: int) -> ProblemError:
    return ProblemError(
        412,
        "version-conflict",
        "The version you based this change on is no longer current",
        f"subscription '{subscription_id}' is at version {current}, not {expected}: re-read it and apply "
        "your change again",
        headers={"ETag": etag_for(current)},
        current_version=current,
    )


def _rotation_conflict(subscription_id: str, expected: int, current: int) -> ProblemError:
    """Two rotations at once (or a rotation and a PATCH): one is saved; answering both would
    hand out a secret that the other write replaced."""
    return ProblemError(
        409,
        "rotation-conflict",
        "Another change of this subscription was saved at the same time",
        f"subscription '{subscription_id}' went from version {expected} to {current} while "
        "this rotation was being saved, so nothing was rotated: rotate again if you still need "
        "a new secret",
        current_version=current,
    )


async def _load(
    services: Services, subscription_id: str, expected: int | None = None
) -> dict[str, Any]:
    with database_errors():
        document = await _subscriptions(services).find_one({"_id": subscription_id})
    if document is None:
        raise _not_found(subscription_id)
    if expected is not None and document["version"] != expected:
        raise _conflict(subscription_id, expected, document["version"])
    return document


async def _save(
    services: Services,
    current: dict[str, Any],
    changes: dict[str, Any],
    conflict: Callable[[str, int, int], ProblemError] = _conflict,
) -> dict[str, Any]:
    """Apply `changes` only if nobody saved since `current` was read (`conflict` otherwise:
    a 412 for a PATCH). version_claims makes that hold on FerretDB v1, whose conditional
    updates are not atomic."""
    new = {**current, **changes, "updated_at": bson_now(), "version": current["version"] + 1}
    try:
        with database_errors():
            return await save_next_version(_subscriptions(services), current, new)
    except VersionTaken as exc:
        if exc.current is None:
            raise _not_found(current["_id"]) from None
        raise conflict(current["_id"], current["version"], exc.current) from None


async def _last_delivery(services: Services, subscription_id: str) -> dict[str, Any] | None:
    with database_errors():
        return await _deliveries(services).find_one(
            {"subscription_id": subscription_id},
            sort=[("created_at", DESCENDING), ("_id", DESCENDING)],
        )


# -- checks -----------------------------------------------------------------------------------


def _destination_problems(
    services: Services, url: str, secrets: list[tuple[str, dict[str, Any] | None]]
) -> list[FieldProblem]:
    """The egress policy's refusals: the URL itself, then each env-named secret (`field`, stored
    form) that would sign requests to it."""
    policy = services.settings.egress
    problems = []
    try:
        policy.check(url, field="url")
    except EgressRefused as exc:
        problems.append(FieldProblem(field=exc.field, message=exc.message))
    for field, stored in secrets:
        if stored is None or stored.get("kind") != webhook_secrets.ENV:
            continue
        try:
            webhook_secrets.check_env_secret(url, stored["env"], policy=policy, field=field)
        except EgressRefused as exc:
            problems.append(FieldProblem(field=field, message=exc.message))
    return problems


def _refuse_if_any(problems: list[FieldProblem]) -> None:
    if problems:
        raise invalid_request(problems)


def _new_secret(services: Services, secret_env: str | None) -> tuple[dict[str, Any], str | None]:
    """(stored form, plaintext to show once or None)."""
    if secret_env is not None:
        return webhook_secrets.env_secret(secret_env), None
    key = services.settings.webhook_encryption_key
    try:
        webhook_secrets.check_key(key)
    except webhook_secrets.SecretUnavailable as exc:
        raise ProblemError(
            503,
            "webhook-encryption-key-missing",
            "Webhook secrets cannot be generated here",
            str(exc),
        ) from None
    plaintext = webhook_secrets.generate()
    return webhook_secrets.generated_secret(plaintext, key=key), plaintext


def _normalized_types(event_types: list[str]) -> list[str]:
    """`*` alone when it is given; otherwise each type once, in the order given."""
    return [ALL_EVENTS] if ALL_EVENTS in event_types else list(dict.fromkeys(event_types))


async def _audit(
    services: Services,
    kind: AuditType,
    caller: ApiKey,
    document: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> None:
    """Who changed where events go, in the audit trail: an endpoint added or redirected is how
    conversations would leak. The host only (a URL's path or query may carry a token)."""
    await services.events.record(
        kind,
        caller.name,
        version=document.get("version"),
        details={
            "subscription_id": document["_id"],
            "host": _host(document["url"]),
            **(details or {}),
        },
    )


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


# -- subscriptions ----------------------------------------------------------------------------


@router.get("", responses=READ_PROBLEMS)
async def list_subscriptions(
    caller: ReaderKey, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None
) -> SubscriptionPage:
    """Newest first, each with its last delivery (one indexed query per subscription)."""
    try:
        query = newest_first_query({}, "created_at", None, None, cursor)
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None
    with database_errors():
        found = (
            _subscriptions(services)
            .find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        )
        documents = await found.limit(limit + 1).to_list(limit + 1)
    items = [
        _as_read_by(caller, _subscription(d, await _last_delivery(services, d["_id"])))
        for d in documents[:limit]
    ]
    more = len(documents) > limit
    return SubscriptionPage(
        items=items, next_cursor=encode_cursor(items[-1].created_at, items[-1].id) if more else None
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 413, 422, 503),
)
async def create_subscription(
    caller: AdminKey,
    services: ServicesDep,
    body: SubscriptionCreate,
    request: Request,
    response: Response,
) -> SubscriptionWithSecret:
    """A new subscription; the generated secret is in this answer only (store it now)."""
    env = webhook_secrets.env_secret(body.secret_env) if body.secret_env else None
    _refuse_if_any(_destination_problems(services, body.url, [("secret_env", env)]))
    stored_secret, plaintext = _new_secret(services, body.secret_env)
    now = bson_now()
    document = {
        "_id": f"sub_{uuid4().hex[:24]}",
        "url": body.url,
        "description": body.description,
        "event_types": _normalized_types(body.event_types),
        "agent_ids": body.agent_ids,
        "status": body.status,
        "secret": stored_secret,
        "previous_secret": None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    with database_errors():
        await _subscriptions(services).insert_one(document)
    logger.info(
        "webhook subscription %s to %s created by %s (%s secret)",
        document["_id"],
        _host(body.url),
        caller.name,
        stored_secret["kind"],
    )
    await _audit(
        services, AuditType.WEBHOOK_CREATED, caller, document, {"secret": stored_secret["kind"]}
    )
    response.headers["Location"] = str(
        request.url_for("get_subscription", subscription_id=document["_id"])
    )
    response.headers["ETag"] = etag_for(1)
    return SubscriptionWithSecret(**_subscription(document).model_dump(), secret=plaintext)


@router.get("/{subscription_id}", responses=READ_PROBLEMS)
async def get_subscription(
    caller: ReaderKey, services: ServicesDep, subscription_id: SubscriptionId, response: Response
) -> Subscription:
    """The subscription (never its secret); its version is the ETag for If-Match."""
    document = await _load(services, subscription_id)
    response.headers["ETag"] = etag_for(document["version"])
    return _as_read_by(
        caller, _subscription(document, await _last_delivery(services, subscription_id))
    )


# The body is read as a plain object (so a secret field gets its own message), documented as
# the model it is validated against.
_PATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": SubscriptionPatch.model_json_schema()}},
}


@router.patch(
    "/{subscription_id}",
    responses=problem_responses(400, 401, 403, 404, 412, 413, 422, 428, 503),
    openapi_extra={"requestBody": _PATCH_BODY},
)
async def update_subscription(
    caller: AdminKey,
    services: ServicesDep,
    subscription_id: SubscriptionId,
    expected: RequiredIfMatch,
    body: Annotated[dict[str, Any], Body()],
    response: Response,
) -> Subscription:
    """Change url, description, event_types, agent_ids or status (pause: `{"status": "paused"}`).
    The secret changes only through rotate-secret."""
    _refuse_secret_fields(body)
    try:
        patch = SubscriptionPatch.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    changes = {name: getattr(patch, name) for name in patch.model_fields_set}
    if "event_types" in changes:
        changes["event_types"] = _normalized_types(changes["event_types"])
    current = await _load(services, subscription_id, expected)
    if "url" in changes:
        secrets = [
            ("secret_env", current["secret"]),
            ("previous_secret_env", current.get("previous_secret")),
        ]
        _refuse_if_any(_destination_problems(services, changes["url"], secrets))
    saved = await _save(services, current, changes)
    logger.info(
        "webhook subscription %s changed by %s: %s", subscription_id, caller.name, sorted(changes)
    )
    await _audit(services, AuditType.WEBHOOK_UPDATED, caller, saved, {"changed": sorted(changes)})
    response.headers["ETag"] = etag_for(saved["version"])
    return _subscription(saved, await _last_delivery(services, subscription_id))


def _refuse_secret_fields(body: dict[str, Any]) -> None:
    owned = (
        "secret",
        "secret_env",
        "previous_secret",
        "signing_secret",
        "id",
        "version",
        "created_at",
    )
    problems = [
        FieldProblem(
            field=name,
            message="change the secret with POST .../rotate-secret"
            if "secret" in name
            else "is set by the API, not by a patch",
        )
        for name in owned
        if name in body
    ]
    if problems:
        raise invalid_request(problems)


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_subscription(
    caller: AdminKey, services: ServicesDep, subscription_id: SubscriptionId
) -> Response:
    """Gone at once: nothing more is fanned out to it, and the dispatcher dead-letters its
    pending deliveries ("the subscription was deleted") without calling the URL."""
    with database_errors():
        deleted = await _subscriptions(services).find_one_and_delete({"_id": subscription_id})
    if deleted is None:
        raise _not_found(subscription_id)
    logger.info("webhook subscription %s deleted by %s", subscription_id, caller.name)
    await _audit(services, AuditType.WEBHOOK_DELETED, caller, deleted)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{subscription_id}/rotate-secret",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def rotate_secret(
    caller: AdminKey,
    services: ServicesDep,
    subscription_id: SubscriptionId,
    response: Response,
    body: RotateRequest | None = None,
) -> SubscriptionWithSecret:
    """A new signing secret (shown in this answer only); the current one stays valid for
    `grace_s` (deliveries carry both signatures meanwhile). A previous secret still in its
    grace is dropped: only the one being replaced is kept."""
    body = body or RotateRequest()
    current = await _load(services, subscription_id)
    env = webhook_secrets.env_secret(body.secret_env) if body.secret_env else None
    _refuse_if_any(_destination_problems(services, current["url"], [("secret_env", env)]))
    stored_secret, plaintext = _new_secret(services, body.secret_env)
    rotation = webhook_secrets.with_rotation(
        current, stored_secret, timedelta(seconds=body.grace_s), bson_now()
    )
    saved = await _save(services, current, rotation, _rotation_conflict)
    logger.info(
        "webhook subscription %s: secret rotated by %s (%s, previous valid %ds)",
        subscription_id,
        caller.name,
        stored_secret["kind"],
        body.grace_s,
    )
    await _audit(
        services, AuditType.WEBHOOK_SECRET_ROTATED, caller, saved, {"grace_s": body.grace_s}
    )
    response.headers["ETag"] = etag_for(saved["version"])
    last = await _last_delivery(services, subscription_id)
    return SubscriptionWithSecret(**_subscription(saved, last).model_dump(), secret=plaintext)


@router.post(
    "/{subscription_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def send_test_event(
    caller: AdminKey, services: ServicesDep, subscription_id: SubscriptionId
) -> TestEventAccepted:
    """Queue a `webhook.test` event for this subscription only (whatever its filters, even
    paused); its delivery shows in .../deliveries like any other."""
    await _load(services, subscription_id)
    data = {
        "subscription_id": subscription_id,
        "message": "A test event from Switchboard: your endpoint receives and verifies webhooks.",
        "actor": caller.name,
    }
    now = datetime.now(UTC)
    event = new_event(
        EventType.WEBHOOK_TEST,
        ADMIN_SOURCE,
        subscription_id,
        data,
        ordering_key=f"webhook-test:{subscription_id}",  # never waits behind the session events
        seq=int(now.timestamp() * 1000),
        at=now,
    )
    event["target_subscription_id"] = subscription_id
    services.outbox.emit(event)
    logger.info(
        "webhook test event %s for %s queued by %s", event["_id"], subscription_id, caller.name
    )
    return TestEventAccepted(event_id=event["_id"], subscription_id=subscription_id)


# -- deliveries -------------------------------------------------------------------------------


@router.get("/{subscription_id}/deliveries", responses=READ_PROBLEMS)
async def list_deliveries(
    caller: ReaderKey,
    services: ServicesDep,
    subscription_id: SubscriptionId,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Recent first: status (`failed` = dead-lettered), attempts, last error, HTTP status and
    response time."""
    await _load(services, subscription_id)
    base: dict[str, Any] = {"subscription_id": subscription_id}
    if status_filter is not None:
        base["status"] = status_filter
    try:
        query = newest_first_query(base, "created_at", None, None, cursor)
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None
    with database_errors():
        found = (
            _deliveries(services)
            .find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        )
        documents = await found.limit(limit + 1).to_list(limit + 1)
    items = [_delivery(d) for d in documents[:limit]]
    more = len(documents) > limit
    return DeliveryPage(
        items=items, next_cursor=encode_cursor(items[-1].created_at, items[-1].id) if more else None
    )


def _again(now: datetime) -> dict[str, Any]:
    """A fresh start for a delivery: due now, no attempts, no lease, a new retry window."""
    return {
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
        "retrying_since": None,
    }


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def redeliver(
    caller: AdminKey,
    services: ServicesDep,
    subscription_id: SubscriptionId,
    delivery_id: DeliveryId,
) -> Delivery:
    """Send a failed (or delivered) delivery again, from attempt 0. 409 while it is pending."""
    await _load(services, subscription_id)
    with database_errors():
        saved = await _deliveries(services).find_one_and_update(
            {
                "_id": delivery_id,
                "subscription_id": subscription_id,
                "status": {"$in": ["failed", "delivered"]},
            },
            {"$set": _again(bson_now())},
            return_document=ReturnDocument.AFTER,
        )
        if saved is None:
            exists = await _deliveries(services).find_one(
                {"_id": delivery_id, "subscription_id": subscription_id}
            )
    if saved is None:
        if exists is None:
            raise ProblemError(
                404,
                "delivery-not-found",
                "Delivery not found",
                f"no delivery '{delivery_id}' of '{subscription_id}'",
            )
        raise ProblemError(
            409, "delivery-pending", "The delivery is still pending", "it is sent (again) as it is"
        )
    logger.info("delivery %s made pending again by %s", delivery_id, caller.name)
    return _delivery(saved)


@router.post(
    "/{subscription_id}/redeliver-failed", responses=problem_responses(401, 403, 404, 422, 503)
)
async def redeliver_failed(
    caller: AdminKey, services: ServicesDep, subscription_id: SubscriptionId
) -> RedeliverCount:
    """Every failed (dead-lettered) delivery of this subscription, pending again from attempt 0."""
    await _load(services, subscription_id)
    with database_errors():
        result = await _deliveries(services).update_many(
            {"subscription_id": subscription_id, "status": "failed"}, {"$set": _again(bson_now())}
        )
    logger.info(
        "%d failed deliveries of %s made pending again by %s",
        result.modified_count,
        subscription_id,
        caller.name,
    )
    return RedeliverCount(redelivered=result.modified_count)
