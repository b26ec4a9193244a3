"""The HTTP chat API: a backend talks to an agent over plain HTTP, replies streamed as
Server-Sent Events.

    POST   /v1/channels/{binding}/conversations                     open: {"user_id", "user_details"?}
    GET    /v1/channels/{binding}/conversations/{id}                what it is
    POST   /v1/channels/{binding}/conversations/{id}/messages       {"text"} -> the reply
    DELETE /v1/channels/{binding}/conversations/{id}                close (ends the session)

The caller is a backend holding an API key (`Authorization: Bearer sk_...`, made with
`python -m admin_api.keys create`) that the binding lists by name (`http.keys`). The user id it
names is trusted, because only such a key can name one: the session's `user_id` is the
binding's prefix + that id, so per-user memory follows the user across conversations.

A message answers JSON (`{"reply", "fields", "session_id", "agent_id", "turn_index"}`), or,
with `Accept: text/event-stream`, a stream: `delta` events (`{"text"}`, the reply as the model
writes it), then one `reply` event (the JSON above), or one `error` event. An
`Idempotency-Key` header makes a retried post safe: the same key and body get the first
answer back (as JSON, or as one `reply` event), the same key with another body a 422, and a
retry while the first is still being answered a 409.

A conversation is a document (`channel_conversations`: binding, user, details, opened and
closed times), not a process's memory: an idle one costs nothing, and any channels replica
can take its next message.
"""

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.errors import DuplicateKeyError
from sse_starlette import EventSourceResponse

from agent_configs.api_keys import API_KEYS, digest_of
from agent_configs.channels import ChannelBinding, ChannelKind
from channels.hub import ChannelError, Hub, Inbound, Reply
from channels.problems import Problem
from channels.registry import ChannelContext, ChannelRunner, Runners, register

CONVERSATIONS = "channel_conversations"
IDEMPOTENCY = "channel_idempotency"
MAX_BODY_BYTES = 256 * 1024
STATUS = {
    "rate_limited": 429,
    "too_long": 413,
    "disabled": 403,
    "malformed": 422,
    "unknown_chat": 404,
    "unsupported": 422,
    "timeout": 504,
    "no_agent": 503,
    "internal": 500,
}


def problem_of(error: ChannelError) -> Problem:
    field = "text" if error.code in ("too_long", "malformed") else None
    problem = Problem(STATUS.get(error.code, 500), error.message, field=field, code=error.code)
    if error.retry_after_s is not None:
        problem.headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return problem


class OpenConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    user_details: dict[str, Any] = Field(default_factory=dict)


class PostMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=32_000)


async def bounded_json(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`, refused (413) past MAX_BODY_BYTES before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Problem(413, f"the body is over {MAX_BODY_BYTES} bytes", code="too_long")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Problem(413, f"the body is over {MAX_BODY_BYTES} bytes", code="too_long")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Problem(422, f"{where}: {first['msg']}", field=where, code="malformed") from None


class HttpChatRunner:
    """Nothing runs between requests: the routes do the work."""

    def __init__(self, binding: ChannelBinding, hub: Hub, context: ChannelContext) -> None:
        self.binding = binding

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def routes(runners: Runners) -> APIRouter:
    router = APIRouter(prefix="/v1/channels/{binding_id}", tags=["http chat"])
    database = runners.context.database

    async def caller(
        binding_id: str, authorization: Annotated[str | None, Header()] = None
    ) -> tuple[ChannelBinding, str]:
        """The binding and the calling key's name; 401 without a key it lists."""
        if runners.stopping:
            problem = Problem(
                503, "the channels service is stopping; try again", code="unavailable"
            )
            problem.headers["Retry-After"] = "1"
            raise problem
        running = runners.get(binding_id)
        if running is None or running[0].kind != ChannelKind.HTTP:
            raise Problem(404, f"no enabled HTTP chat channel {binding_id!r}")
        binding = running[0]
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "Authorization: a Bearer API key is required")
        key = await database[API_KEYS].find_one({"digest": digest_of(token), "revoked_at": None})
        assert binding.http is not None
        if key is None or key.get("name") not in binding.http.keys:
            raise Problem(401, "Authorization: this key may not use this channel")
        return binding, str(key["name"])

    Caller = Annotated[tuple[ChannelBinding, str], Depends(caller)]

    async def conversation_of(binding: ChannelBinding, conversation_id: str) -> dict[str, Any]:
        found = await database[CONVERSATIONS].find_one(
            {"_id": conversation_id, "binding_id": binding.binding_id}
        )
        if found is None:
            raise Problem(404, f"no conversation {conversation_id!r} in this channel")
        if found.get("closed_at") is not None:
            raise Problem(409, f"the conversation {conversation_id!r} is closed")
        return found

    @router.post("/conversations", status_code=201)
    async def open_conversation(request: Request, called: Caller) -> JSONResponse:
        binding, key_name = called
        body: OpenConversation = await bounded_json(request, OpenConversation)
        document = {
            "_id": f"conv_{uuid.uuid4().hex}",
            "binding_id": binding.binding_id,
            "user": body.user_id,
            "user_id": binding.trusted_user_id(body.user_id),
            "user_details": body.user_details,
            "key_name": key_name,
            "opened_at": datetime.now(UTC),
            "closed_at": None,
        }
        await database[CONVERSATIONS].insert_one(document)
        return JSONResponse(_public(document), 201)

    @router.get("/conversations/{conversation_id}")
    async def show_conversation(conversation_id: str, called: Caller) -> JSONResponse:
        found = await database[CONVERSATIONS].find_one(
            {"_id": conversation_id, "binding_id": called[0].binding_id}
        )
        if found is None:
            raise Problem(404, f"no conversation {conversation_id!r} in this channel")
        return JSONResponse(_public(found))

    @router.delete("/conversations/{conversation_id}", status_code=204)
    async def close_conversation(conversation_id: str, called: Caller) -> Response:
        binding = called[0]
        await conversation_of(binding, conversation_id)
        await database[CONVERSATIONS].update_one(
            {"_id": conversation_id}, {"$set": {"closed_at": datetime.now(UTC)}}
        )
        await runners.hub.close(binding.binding_id, conversation_id)
        return Response(status_code=204)

    @router.post("/conversations/{conversation_id}/messages")
    async def post_message(
        conversation_id: str,
        request: Request,
        called: Caller,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Response:
        binding, key_name = called
        conversation = await conversation_of(binding, conversation_id)
        body: PostMessage = await bounded_json(request, PostMessage)
        inbound = Inbound(
            binding,
            user=str(conversation["user"]),
            conversation_id=conversation_id,
            text=body.text,
            message_id=idempotency_key,
            user_details=dict(conversation.get("user_details") or {}),
        )
        streamed = "text/event-stream" in request.headers.get("accept", "")
        if idempotency_key is not None:
            earlier = await _claim(database, binding, key_name, idempotency_key, body.text)
            if earlier is not None:
                return _replay(earlier, streamed)
        if streamed:
            return EventSourceResponse(
                _stream(runners.hub, inbound, database, idempotency_key, binding, key_name)
            )
        try:
            reply = await runners.hub.handle(inbound)
        except ChannelError as error:
            await _forget(database, binding, key_name, idempotency_key)
            raise problem_of(error) from None
        answer = _answer(reply)
        await _remember(database, binding, key_name, idempotency_key, answer)
        return JSONResponse(answer)

    return router


def _public(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation_id": document["_id"],
        "user_id": document["user"],
        "user_details": document.get("user_details") or {},
        "opened_at": document["opened_at"].isoformat(),
        "closed_at": document["closed_at"].isoformat() if document.get("closed_at") else None,
    }


def _answer(reply: Reply) -> dict[str, Any]:
    return {
        "reply": reply.text,
        "fields": reply.fields,
        "session_id": reply.session_id,
        "agent_id": reply.agent_id,
        "turn_index": reply.turn.get("turn_index"),
        "greeting": reply.greeting,
    }


async def _stream(
    hub: Hub,
    inbound: Inbound,
    database: Any,
    idempotency_key: str | None,
    binding: ChannelBinding,
    key_name: str,
) -> AsyncIterator[dict[str, str]]:
    deltas: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_delta(text: str) -> None:
        deltas.put_nowait(text)

    async def answer() -> Reply:
        try:
            return await hub.handle(inbound, on_delta=on_delta)
        finally:
            deltas.put_nowait(None)

    task = asyncio.create_task(answer())
    try:
        while (delta := await deltas.get()) is not None:
            yield {"event": "delta", "data": json.dumps({"text": delta})}
        try:
            reply = await task
        except ChannelError as error:
            await _forget(database, binding, key_name, idempotency_key)
            yield {"event": "error", "data": json.dumps(error.as_dict())}
            return
        answer_json = _answer(reply)
        await _remember(database, binding, key_name, idempotency_key, answer_json)
        yield {"event": "reply", "data": json.dumps(answer_json)}
    finally:
        if not task.done():  # the client went away: the turn still finishes and is recorded
            await asyncio.wait([task])


def _idempotency_id(binding: ChannelBinding, key_name: str, key: str) -> str:
    return f"{binding.binding_id}:{key_name}:{key}"


async def _claim(
    database: Any, binding: ChannelBinding, key_name: str, key: str, text: str
) -> dict[str, Any] | None:
    """None: this post is the first with `key` (claimed); else the earlier one's document."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    document = {
        "_id": _idempotency_id(binding, key_name, key),
        "body_sha256": digest,
        "answer": None,
        "at": datetime.now(UTC),
    }
    try:
        await database[IDEMPOTENCY].insert_one(document)
        return None
    except DuplicateKeyError:
        earlier = await database[IDEMPOTENCY].find_one({"_id": document["_id"]})
    if earlier is None:  # forgotten (the first failed) between the insert and the read
        return await _claim(database, binding, key_name, key, text)
    if earlier.get("body_sha256") != digest:
        raise Problem(
            422,
            "Idempotency-Key: already used with another body",
            field="Idempotency-Key",
            code="malformed",
        )
    if earlier.get("answer") is None:
        raise Problem(409, "Idempotency-Key: the first post with this key is still answered")
    return dict(earlier)


async def _remember(
    database: Any,
    binding: ChannelBinding,
    key_name: str,
    key: str | None,
    answer: dict[str, Any],
) -> None:
    if key is not None:
        await database[IDEMPOTENCY].update_one(
            {"_id": _idempotency_id(binding, key_name, key)}, {"$set": {"answer": answer}}
        )


async def _forget(database: Any, binding: ChannelBinding, key_name: str, key: str | None) -> None:
    """A post that got no answer may be retried with its key."""
    if key is not None:
        await database[IDEMPOTENCY].delete_one({"_id": _idempotency_id(binding, key_name, key)})


def _replay(earlier: dict[str, Any], streamed: bool) -> Response:
    answer = earlier["answer"]
    if not streamed:
        return JSONResponse(answer, headers={"Idempotent-Replayed": "true"})

    async def once() -> AsyncIterator[dict[str, str]]:
        yield {"event": "reply", "data": json.dumps(answer)}

    return EventSourceResponse(once(), headers={"Idempotent-Replayed": "true"})


def _runner(binding: ChannelBinding, hub: Hub, context: ChannelContext) -> ChannelRunner:
    return HttpChatRunner(binding, hub, context)


register(ChannelKind.HTTP, _runner, routes)
