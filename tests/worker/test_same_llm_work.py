"""The platform's own cost is measured against a bare worker asking the model for the same
work (bench/concurrent_sessions.py, the `switchboard-same-llm-work` phase). That comparison
holds only if a session of that phase asks the model for exactly what a bare livekit-agents
worker asks: this test runs one session of each on the scripted endpoint, which keeps every
request body, and compares what the model was asked."""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent_configs.database import open_client
from bench.concurrent_sessions import SAME_WORK, session_metadata
from bench.harness import SAME_WORK_AGENT, drop_database, seed_database
from devstack import REPO_ROOT, Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    launched_workers,
    stop_worker,
    wait_for_session_end,
    wait_until_registered,
)
from tests.worker.scripted_llm import ScriptedLLM

MAX_TOKENS = 32
"""The cap `bench.concurrent_sessions --max-tokens 32` sets on every type."""
MESSAGE = "My login is not working since this morning."


@contextmanager
def bare_worker(
    endpoints: Endpoints, support: dict[str, Any], llm_url: str, tmp: Path
) -> Iterator[tuple[str, Callable[[], None]]]:
    """`python -m bench.bare_worker start`, fed what the bench feeds it; yields its agent name
    and a wait until it registered, so the other worker starts meanwhile: one after the
    other, with the bare one stopped in between, the test took 14.5 s (9.2 s so, 2 cores)."""
    agent_name = f"bare-{uuid.uuid4().hex[:8]}"
    env = (
        dict(os.environ)
        | endpoints.as_env()
        | {
            "LOCAL_LLM_URL": llm_url,
            "AGENT_NAME": agent_name,
            "WORKER_HTTP_PORT": "0",
            "BARE_GREETING": support["greeting"],
            "BARE_INSTRUCTIONS": support["instructions"],
            "BARE_LLM_MODEL": support["model"],
            "BARE_TEMPERATURE": str(support["temperature"]),
            "BARE_MAX_TOKENS": str(support["max_tokens"]),
        }
    )
    log_path = tmp / "bare-worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_worker", "start"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield agent_name, lambda: wait_until_registered(process, log_path)
    finally:
        stop_worker(process)


async def one_turn(client: RoomClient, metadata: dict[str, Any]) -> None:
    """Join, read the greeting, send one message and read its answer, leave."""
    try:
        await client.join(metadata)
        await client.next_transcript(0)  # the greeting
        await client.say(MESSAGE)
        await client.next_transcript(1)
    finally:
        await client.leave()


def what_was_asked(body: dict[str, Any]) -> dict[str, Any]:
    """A request as far as the model's work goes: the prompt, the sampling, the token cap
    (whatever its name), a response format or tools, streaming."""
    return {
        "messages": [(m["role"], m.get("content")) for m in body["messages"]],
        "temperature": body.get("temperature"),
        "token_cap": body.get("max_completion_tokens", body.get("max_tokens")),
        "response_format": body.get("response_format"),
        "tools": body.get("tools"),
        "stream": body.get("stream"),
    }


async def test_a_same_llm_work_session_asks_the_model_exactly_what_a_bare_worker_asks(
    endpoints: Endpoints,
    scripted: ScriptedLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Both on the database the bench seeds, with the bench's sampling, greeting, one message.

    The bare worker's greeting is text (no request), its answer one streamed request with
    the cap as `max_completion_tokens`, which llama.cpp honours (measured: 8 asked, 8
    generated, under either name). A same-LLM-work session must be served by the copy with
    no fields and no summary and make that one request: no fields schema raising the cap,
    no structured turn, no summary at the end."""
    database_name = f"same_work_{uuid.uuid4().hex[:10]}"
    overrides = {
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "model": "scripted",
        "base_url": scripted.url,
    }
    support = await seed_database(endpoints.mongo_uri, database_name, overrides)
    try:
        with (
            bare_worker(endpoints, support, scripted.url, tmp_path_factory.mktemp("bare")) as (
                bare,
                bare_registered,
            ),
            launched_workers(endpoints, database_name, tmp_path_factory, prefix="sb-same") as (
                running,
            ),
        ):
            bare_registered()
            client = RoomClient(
                endpoints.livekit_url, endpoints.livekit_api_key, endpoints.livekit_api_secret, bare
            )
            await one_turn(client, {"user_id": "u-bare"})
            bare_requests = [what_was_asked(body) for body in scripted.requests]
            scripted.requests.clear()

            client = RoomClient(
                endpoints.livekit_url,
                endpoints.livekit_api_key,
                endpoints.livekit_api_secret,
                running.agent_name,
            )
            metadata = session_metadata(SAME_WORK, 1, 0)
            try:
                await client.join(metadata)
                served_by, _ = await client.routed_agent()
                await client.next_transcript(0)
                await client.say(MESSAGE)
                await client.next_turn(0)
            finally:
                await client.leave()
            # the session's record ends after its turns' fields and its summary were made
            mongo = open_client(endpoints.mongo_uri)
            try:
                await wait_for_session_end(mongo[database_name], client.room_name)
            finally:
                await mongo.close()
        switchboard_requests = [what_was_asked(body) for body in scripted.requests]
    finally:
        await drop_database(endpoints.mongo_uri, database_name)

    assert served_by == SAME_WORK_AGENT
    assert [r["token_cap"] for r in bare_requests] == [MAX_TOKENS]
    assert switchboard_requests == bare_requests
