"""A pinned agent type (the console's playground): `switchboard_pin` in the job (dispatch)
metadata serves the room with that type, at that version, past the routing rules.

The rooms are joined the way `POST /token` sets them up (the pin in the dispatch's metadata);
the built-in rules' `explicit` allowlist does not name the playground type, so only the pin
can reach it.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.models import AgentStatus, SummarySpec
from agent_configs.store import ConfigStore
from devstack.frontend import RoomClient
from tests.worker.conftest import wait_for_session_end

pytestmark = pytest.mark.usefixtures("text_only_agents")

PLAYGROUND = "playground-agent-v1"
FIRST_GREETING = "Hello from version one."
SECOND_GREETING = "Hello from version two."


@pytest.fixture(scope="module")
async def playground_type(
    worker_database: AsyncDatabase, text_only_agents: None
) -> AsyncIterator[str]:
    """A type no routing rule names, at two versions that greet differently."""
    store = ConfigStore(worker_database)
    support = await store.get("support-agent-v1")
    first = support.model_copy(
        update={
            "agent_id": PLAYGROUND,
            "name": "Playground Agent",
            "purposes": [],
            "intents": [],
            "greeting": FIRST_GREETING,
            "summary": SummarySpec(enabled=False),
            "memory": support.memory.model_copy(update={"enabled": False}),
        }
    )
    created = await store.create(first)
    await store.update(
        created.model_copy(update={"greeting": SECOND_GREETING}), expected_version=created.version
    )
    yield PLAYGROUND


def pinned(agent_id: str, version: int | None = None, **metadata: Any) -> dict[str, Any]:
    pin = {"agent_id": agent_id} | ({"version": version} if version is not None else {})
    return metadata | {"switchboard_pin": pin}


async def test_a_pinned_type_no_rule_allows_is_served_with_strategy_pinned(
    client: RoomClient, worker_database: AsyncDatabase, playground_type: str
) -> None:
    await client.join(pinned(playground_type, user_id="u-pin-1"))
    assert await client.routed_agent() == (playground_type, "pinned")
    assert await client.next_transcript(0) == SECOND_GREETING  # no version: the current one

    await client.say("Hello, is this the playground?")
    assert (await client.next_turn(0))["agent_id"] == playground_type

    await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert (record["agent_id"], record["agent_version"]) == (playground_type, 2)
    routing = record["routing"]
    assert routing["strategy"] == "pinned" and routing["metadata_source"] == "job"
    assert routing["trail"] == [
        {
            "strategy": "pinned",
            "agent_id": playground_type,
            "outcome": "chosen",
            "reason": "pinned: playground-agent-v1 current version",
        }
    ]


async def test_a_pinned_older_version_is_the_one_that_runs(
    client: RoomClient, worker_database: AsyncDatabase, playground_type: str
) -> None:
    await client.join(pinned(playground_type, version=1))  # a pin alone: no routing metadata at all
    assert await client.routed_agent() == (playground_type, "pinned")
    assert await client.next_transcript(0) == FIRST_GREETING
    await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert (record["agent_id"], record["agent_version"]) == (playground_type, 1)
    assert record["routing"]["trail"][0]["reason"] == "pinned: playground-agent-v1 version 1"


async def test_a_paused_type_may_be_pinned_but_an_archived_one_is_routed_as_usual(
    client: RoomClient, worker_database: AsyncDatabase, endpoints: Any, worker: Any
) -> None:
    store = ConfigStore(worker_database)
    await store.set_status("sales-agent-v1", AgentStatus.PAUSED)
    try:
        await client.join(pinned("sales-agent-v1", purpose="support"))
        assert await client.routed_agent() == ("sales-agent-v1", "pinned")
    finally:
        await store.set_status("sales-agent-v1", AgentStatus.ACTIVE)

    await store.archive("onboarding-agent-v1")
    archived = RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )
    try:
        await archived.join(pinned("onboarding-agent-v1", purpose="support"))
        assert await archived.routed_agent() == ("support-agent-v1", "purpose")
        await archived.leave()
        trail = (await wait_for_session_end(worker_database, archived.room_name))["routing"][
            "trail"
        ]
        assert trail[0] == {
            "strategy": "pinned",
            "agent_id": "onboarding-agent-v1",
            "outcome": "skipped",
            "reason": "onboarding-agent-v1 current version: archived",
        }
    finally:
        await archived.leave()
        await store.set_status("onboarding-agent-v1", AgentStatus.ACTIVE)


async def test_a_pin_of_a_missing_version_falls_back_to_routing_with_the_reason_in_the_trail(
    client: RoomClient, worker_database: AsyncDatabase, playground_type: str
) -> None:
    await client.join(pinned(playground_type, version=99, purpose="sales"))
    assert await client.routed_agent() == ("sales-agent-v1", "purpose")
    await client.leave()
    trail = (await wait_for_session_end(worker_database, client.room_name))["routing"]["trail"]
    assert trail[0]["strategy"] == "pinned" and trail[0]["outcome"] == "skipped"
    assert trail[0]["reason"] == "playground-agent-v1 version 99: no version 99 (current is 2)"
    assert trail[-1]["outcome"] == "chosen" and trail[-1]["strategy"] == "purpose"


async def test_a_pin_in_participant_metadata_only_is_ignored(
    client: RoomClient, playground_type: str
) -> None:
    """Only the dispatch's metadata is trusted with a pin; the participant's is not."""
    await client.join(pinned(playground_type, purpose="sales"), in_dispatch=False)
    assert await client.routed_agent() == ("sales-agent-v1", "purpose")
