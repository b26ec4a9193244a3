"""The `webhook` routing strategy through LiveKit: the real worker asks a real hook on loopback,
and the greeting the client receives is rendered with the hook's variables and the metadata."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack.frontend import RoomClient
from tests.agent_configs.routing.hook_server import HookServer
from tests.worker.conftest import wait_for_session_end

pytestmark = pytest.mark.usefixtures("text_only_agents")

METADATA = {"purpose": "support", "user_id": "u-ada", "user_details": {"name": "Ada"}}


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = await HookServer(
        answer={"agent_id": "sales-agent-v1", "variables": {"plan": "gold"}}
    ).start()
    yield server
    await server.stop()


async def use_rules(database: AsyncDatabase, chain: list[dict[str, Any]]) -> None:
    store = RulesStore(database)
    await store.save({"chain": chain}, expected_version=(await store.current()).version)


async def set_greeting(database: AsyncDatabase, agent_id: str, greeting: str) -> None:
    store = ConfigStore(database)
    current = await store.get(agent_id)
    await store.update(
        current.model_copy(update={"greeting": greeting}), expected_version=current.version
    )


@pytest.fixture(autouse=True)
async def templated_greetings(worker_database: AsyncDatabase) -> None:
    await set_greeting(
        worker_database, "sales-agent-v1", "Hi {{user_details.name}}, you are on {{variables.plan}}"
    )
    await set_greeting(
        worker_database,
        "support-agent-v1",
        'Hello {{user_details.name}}, plan {{variables.plan | default: "basic"}}',
    )


def hook_first(hook: HookServer, **params: Any) -> list[dict[str, Any]]:
    return [
        {"strategy": "webhook", "params": {"url": hook.url, **params}},
        {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
    ]


async def test_the_hook_routes_the_room_and_its_variables_fill_the_greeting(
    client: RoomClient, hook: HookServer, worker_database: AsyncDatabase
) -> None:
    await use_rules(worker_database, hook_first(hook))

    await client.join(METADATA)

    assert await client.routed_agent() == ("sales-agent-v1", "webhook")
    assert await client.next_transcript(0) == "Hi Ada, you are on gold"
    asked = hook.requests[0].body
    assert (asked["purpose"], asked["user_id"], asked["room"]) == (
        "support",
        "u-ada",
        client.room_name,
    )
    assert "user_details" not in asked  # not asked for: include_user_details is off

    room = client.room_name
    await client.leave()
    record = await wait_for_session_end(worker_database, room)
    assert record["routing"]["variables"] == {"plan": "gold"}
    assert record["routing"]["trail"][0] == {
        "strategy": "webhook",
        "agent_id": "sales-agent-v1",
        "outcome": "chosen",
        "reason": "the hook picked sales-agent-v1 with 1 variable(s)",
    }


async def test_a_hook_that_times_out_falls_through_and_the_template_uses_its_default(
    client: RoomClient, hook: HookServer, worker_database: AsyncDatabase
) -> None:
    hook.delay_s = 3.0
    await use_rules(worker_database, hook_first(hook, timeout_s=0.5))

    await client.join(METADATA)

    assert await client.routed_agent() == ("support-agent-v1", "default")
    assert await client.next_transcript(0) == "Hello Ada, plan basic"
    room = client.room_name
    await client.leave()
    record = await wait_for_session_end(worker_database, room)
    assert record["routing"]["trail"][0]["reason"] == "timed out after 0.5s"
    assert record["routing"]["variables"] == {}
