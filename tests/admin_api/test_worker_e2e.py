"""The admin API with the real worker on the real LiveKit server and FerretDB; the model is
the scripted endpoint (what the API serves does not depend on what a model answers).

A token from POST /token lets a real rtc client join and get the agent type that
POST /routing/resolve predicted; a pause through the API reroutes the worker's next room;
the session the worker records is then served by /sessions and /events.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.admin_api.conftest import Keys, admin_settings, make_keys, running_app
from tests.worker import conftest as worker_fixtures
from tests.worker.conftest import RunningWorker, wait_for_session_end

# The worker tests' module-scoped fixtures: one real worker (and its seeded database) here.
scripted_worker = worker_fixtures.scripted_worker
module_llm = worker_fixtures.module_llm
worker_database = worker_fixtures.worker_database
text_only_agents = worker_fixtures.text_only_agents


@pytest.fixture(scope="module")
def worker(scripted_worker: RunningWorker) -> RunningWorker:
    """Every `local` type on the scripted endpoint: with the tiny local model's reply and
    summary the recorded-session test took 7.4 s (3.6 s now)."""
    return scripted_worker


pytestmark = pytest.mark.usefixtures("text_only_agents")


class MintedTokenClient(RoomClient):
    """The frontend of devstack.frontend, joining with a token the admin API minted."""

    def __init__(self, minted: dict[str, Any]) -> None:
        super().__init__(minted["server_url"], "", "", "")
        self.room_name = minted["room"]
        self._minted = minted["token"]

    def token(self, metadata: str | None, identity: str, **grants: bool) -> str:
        return self._minted  # what the admin API granted, whatever a test would ask for


@pytest.fixture(scope="module")
async def worker_api(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    settings = admin_settings(endpoints, worker_database.name, agent_name=worker.agent_name)
    keys = await make_keys(worker_database)
    async with running_app(settings) as (_, api):
        yield api, keys


@pytest.fixture
async def frontend() -> AsyncIterator[list[MintedTokenClient]]:
    clients: list[MintedTokenClient] = []
    yield clients
    for client in clients:
        await client.leave()


async def join_with_minted_token(
    worker_api: tuple[httpx.AsyncClient, Keys],
    frontend: list[MintedTokenClient],
    metadata: dict[str, Any],
) -> MintedTokenClient:
    api, keys = worker_api
    minted = await api.post(
        "/api/v1/token", json={"metadata": metadata}, headers=keys.header("token")
    )
    assert minted.status_code == 200, minted.text
    client = MintedTokenClient(minted.json())
    frontend.append(client)
    await client.join(None)
    return client


async def resolved(
    worker_api: tuple[httpx.AsyncClient, Keys], metadata: dict[str, Any]
) -> dict[str, Any]:
    api, keys = worker_api
    response = await api.post(
        "/api/v1/routing/resolve", json={"metadata": metadata}, headers=keys.header("viewer")
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "metadata",
    [
        {"purpose": "sales", "user_id": "api-u-1"},
        {"user_id": "api-u-2", "user_details": {"is_new_user": True}},
    ],
)
async def test_a_minted_token_joins_and_gets_the_resolved_agent(
    worker_api: tuple[httpx.AsyncClient, Keys],
    frontend: list[MintedTokenClient],
    metadata: dict[str, Any],
) -> None:
    expected = await resolved(worker_api, metadata)
    client = await join_with_minted_token(worker_api, frontend, metadata)
    assert await client.routed_agent() == (expected["agent_id"], expected["strategy"])


async def test_a_pause_through_the_api_reroutes_the_next_room(
    worker_api: tuple[httpx.AsyncClient, Keys], frontend: list[MintedTokenClient]
) -> None:
    api, keys = worker_api
    metadata = {"purpose": "interview", "user_id": "api-u-3"}
    paused = await api.post(
        "/api/v1/agents/pte-interview-agent-v1/pause", headers=keys.header("admin")
    )
    assert paused.status_code == 200
    try:
        expected = await resolved(worker_api, metadata)
        skipped = next(e for e in expected["trail"] if e["strategy"] == "purpose")
        assert (skipped["outcome"], skipped["reason"]) == ("skipped", "paused")
        assert (expected["agent_id"], expected["strategy"]) == ("support-agent-v1", "default")
        client = await join_with_minted_token(worker_api, frontend, metadata)
        assert await client.routed_agent() == ("support-agent-v1", "default")
    finally:
        await api.post("/api/v1/agents/pte-interview-agent-v1/resume", headers=keys.header("admin"))


async def test_the_recorded_session_is_served_with_its_turns_and_events(
    worker_api: tuple[httpx.AsyncClient, Keys],
    frontend: list[MintedTokenClient],
    worker_database: AsyncDatabase,
) -> None:
    api, keys = worker_api
    client = await join_with_minted_token(
        worker_api, frontend, {"purpose": "support", "user_id": "api-u-4"}
    )
    assert await client.routed_agent() == ("support-agent-v1", "purpose")
    await client.next_transcript(0)  # the greeting
    await client.say("My password reset link does not arrive, can you help?")
    await client.wait_for(lambda: client.data.get("agent-turn"), 180, "an agent-turn payload")
    await client.leave()
    frontend.clear()
    record = await wait_for_session_end(worker_database, client.room_name)
    session_id = record["session_id"]

    viewer = keys.header("viewer")
    listed = (
        await api.get("/api/v1/sessions", params={"user_id": "api-u-4"}, headers=viewer)
    ).json()
    assert [s["session_id"] for s in listed["items"]] == [session_id]
    detail = (await api.get(f"/api/v1/sessions/{session_id}", headers=viewer)).json()
    assert detail["agent_id"] == "support-agent-v1" and detail["routing"]["strategy"] == "purpose"
    assert detail["turns"] and detail["turns"][0]["turn_index"] == 0
    assert detail["turns"][0]["user_text"].startswith("My password")
    assert any(line["role"] == "user" for line in detail["transcript"])
    # the turn's waterfall and what the session cost (worker/waterfall.py, worker/cost.py)
    assert detail["turns"][0]["waterfall"][0] == {
        "stage": "message_received",
        "start_ms": 0,
        "end_ms": 0,
        "source": "switchboard",
        "detail": None,
    }
    assert set(detail["cost"]) == {"llm", "stt_audio_s", "tts_characters", "tool_calls"}
    assert detail["cost"]["tts_characters"] == 0  # a text session

    events = (
        await api.get("/api/v1/events", params={"session_id": session_id}, headers=viewer)
    ).json()
    assert {(e["type"], e["actor"]) for e in events["items"]} == {
        ("session.started", "worker"),
        ("session.ended", "worker"),
    }
    stats = (await api.get("/api/v1/agents/support-agent-v1/stats", headers=viewer)).json()
    assert stats["sessions"]["ended"] >= 1 and stats["turns"]["total"] >= 1
