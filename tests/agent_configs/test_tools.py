"""Tools checked at write time: field paths, the egress policy, transfer targets, plugins, seeding.

Plugins are real `switchboard.tools` entry points of a distribution written into a temporary
directory on sys.path (what pip leaves behind); the store is the real FerretDB.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.egress import EgressPolicy
from agent_configs.errors import AgentNotFound, ConfigProblem, ConfigRefused
from agent_configs.files import DEFAULTS_DIR, load_config_dir, load_config_file
from agent_configs.models import AgentConfig, AgentStatus, describe_validation_error
from agent_configs.store import ConfigStore
from agent_configs.tool_plugins import ENTRY_POINT_GROUP
from agent_configs.tools import tool_problems
from devstack import REPO_ROOT, Endpoints
from scripts.setup_agents import Outcome, seed
from tests.factories import support_definition

EXAMPLES_DIR = REPO_ROOT / "agent_configs" / "examples"
EXAMPLE = EXAMPLES_DIR / "support-with-tools.yaml"
ORDERS_POLICY = EgressPolicy(secrets={"ORDERS_API_TOKEN": ["127.0.0.1:8099"]})


def with_tools(*tools: dict[str, Any], agent_id: str = "support-agent-v1") -> AgentConfig:
    return AgentConfig.model_validate(support_definition(agent_id=agent_id, tools=list(tools)))


def lookup(**changes: Any) -> dict[str, Any]:
    tool = {
        "kind": "http",
        "name": "lookup_order",
        "description": "Look up an order.",
        "url": "https://orders.example/orders/{order_id}",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
    return tool | changes


def transfer(*targets: str) -> dict[str, Any]:
    return {"kind": "transfer_to_agent", "targets": list(targets)}


def fields(problems: list[Any]) -> dict[str, str]:
    return {p.field: p.message for p in problems}


def example() -> AgentConfig:
    loaded = load_config_file(EXAMPLE)
    assert isinstance(loaded, AgentConfig), loaded
    return loaded


# -- field paths of the spec models ---------------------------------------------------------


def model_problems(*tools: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        with_tools(*tools)
    return describe_validation_error(caught.value)


def test_a_tool_field_path_leaves_out_the_kind_pydantic_puts_in_it() -> None:
    [line] = model_problems(lookup(parameters={"type": "string"}))
    assert line.startswith('tools.0.parameters: must be a JSON Schema of type "object"')


def test_a_url_placeholder_that_is_no_parameter_is_the_urls_problem() -> None:
    [line] = model_problems(lookup(url="https://orders.example/orders/{order}"))
    assert line == (
        "tools.0.url: placeholder {order} is neither a parameter nor a session value "
        "(session_id, agent_id, user_id, room)"
    )


def test_an_unknown_or_missing_kind_is_the_kind_fields_problem() -> None:
    [unknown] = model_problems({"kind": "shell", "name": "rm"})
    assert unknown.startswith("tools.0.kind: Input tag 'shell'")
    [missing] = model_problems({"name": "x"})
    assert missing.startswith(
        "tools.0.kind: each tool needs a kind: one of end_session, escalate_to_human, http"
    )


# -- the egress policy for tools ------------------------------------------------------------


def test_a_tool_url_is_a_keyless_destination_of_the_policy() -> None:
    config = with_tools(lookup())
    assert fields(EgressPolicy().config_problems(config)) == {
        "tools.0.url": "host 'orders.example' is not allowed by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS)"
    }
    assert EgressPolicy(hosts=["orders.example"]).config_problems(config) == []


def test_a_header_secret_may_go_only_where_the_policy_sends_that_secret() -> None:
    config = with_tools(lookup(headers={"Authorization": {"env": "ORDERS_TOKEN"}}))
    refused = fields(EgressPolicy(hosts=["orders.example"]).config_problems(config))
    assert refused == {
        "tools.0.headers.Authorization.env": (
            "ORDERS_TOKEN is not a key configs may use (the operator lists them in EGRESS_SECRETS)"
        )
    }
    elsewhere = EgressPolicy(
        secrets={"ORDERS_TOKEN": ["billing.example"]}, hosts=["orders.example"]
    )
    assert fields(elsewhere.config_problems(config)) == {
        "tools.0.headers.Authorization.env": "ORDERS_TOKEN may only be sent to billing.example, not to 'orders.example'"
    }
    assert EgressPolicy(secrets={"ORDERS_TOKEN": ["orders.example"]}).config_problems(config) == []


def test_a_worker_credential_never_goes_in_a_tool_header() -> None:
    config = with_tools(lookup(headers={"X-Key": {"env": "LIVEKIT_API_SECRET"}}))
    policy = EgressPolicy(secrets={"LIVEKIT_API_SECRET": ["orders.example"]})
    assert (
        "never sent anywhere" in fields(policy.config_problems(config))["tools.0.headers.X-Key.env"]
    )


def test_a_header_secret_needs_https_except_on_loopback() -> None:
    plain = with_tools(
        lookup(
            url="http://orders.example/orders/{order_id}", headers={"A": {"env": "ORDERS_TOKEN"}}
        )
    )
    policy = EgressPolicy(secrets={"ORDERS_TOKEN": ["orders.example", "127.0.0.1:8099"]})
    assert "unencrypted" in fields(policy.config_problems(plain))["tools.0.headers.A.env"]
    local = with_tools(
        lookup(
            url="http://127.0.0.1:8099/orders/{order_id}", headers={"A": {"env": "ORDERS_TOKEN"}}
        )
    )
    assert policy.config_problems(local) == []


def test_session_values_and_constants_in_headers_are_not_secrets() -> None:
    headers = {"X-Session": {"session": "session_id"}, "Accept": {"value": "application/json"}}
    assert (
        EgressPolicy(hosts=["orders.example"]).config_problems(with_tools(lookup(headers=headers)))
        == []
    )


def test_the_model_can_never_choose_a_tools_host() -> None:
    parameters = {"type": "object", "properties": {"host": {"type": "string"}}}
    config = with_tools(lookup(url="https://{host}/orders", parameters=parameters))
    assert fields(EgressPolicy(hosts=["*.example"]).config_problems(config)) == {
        "tools.0.url": "the host cannot come from a {placeholder}: write it out"
    }


def test_an_mcp_server_is_checked_like_an_http_tool() -> None:
    mcp = {
        "kind": "mcp",
        "name": "crm",
        "url": "https://mcp.crm.example/mcp",
        "headers": {"Authorization": {"env": "CRM_TOKEN"}},
    }
    refused = fields(EgressPolicy().config_problems(with_tools(mcp)))
    assert set(refused) == {"tools.0.url", "tools.0.headers.Authorization.env"}


CONNECTION_HEADERS = [
    "Host",
    "host",
    "Content-Length",
    "transfer-encoding",
    "CONNECTION",
    "TE",
    "Upgrade",
    "Proxy-Authorization",
    "Keep-Alive",
    "Trailer",
    "Expect",
]


@pytest.mark.parametrize("name", CONNECTION_HEADERS)
def test_a_connection_level_header_is_never_a_tools_to_set(name: str) -> None:
    """The policy checks the URL's host: a Host header would pick another virtual host behind
    the same address, and framing headers would let a config split or smuggle requests."""
    policy = EgressPolicy(hosts=["orders.example", "mcp.crm.example"])
    http = with_tools(lookup(headers={name: {"value": "admin.internal"}}))
    mcp = with_tools(
        {
            "kind": "mcp",
            "name": "crm",
            "url": "https://mcp.crm.example/mcp",
            "headers": {"X-Team": {"value": "ops"}, name: {"session": "user_id"}},
        }
    )
    for config in (http, mcp):
        refused = fields(policy.config_problems(config))
        assert list(refused) == [f"tools.0.headers.{name}"]
        assert refused[f"tools.0.headers.{name}"].startswith("a connection-level header")
    assert "tools.0.headers." in (policy.refusal(http) or "")


def test_the_example_passes_a_policy_allowing_its_token_and_the_default_names_the_header() -> None:
    config = example()
    assert [tool.kind for tool in config.tools] == ["http", "transfer_to_agent", "end_session"]
    assert ORDERS_POLICY.config_problems(config) == []
    assert list(fields(EgressPolicy().config_problems(config))) == [
        "tools.0.headers.Authorization.env"
    ]


def test_routing_treats_a_refused_tool_like_a_refused_model() -> None:
    assert "tools.0.headers.Authorization.env" in (EgressPolicy().refusal(example()) or "")
    assert ORDERS_POLICY.refusal(example()) is None


# -- the store: every definition write ------------------------------------------------------


@pytest.fixture
async def seeded_store(database: AsyncDatabase) -> ConfigStore:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    store = ConfigStore(database, ORDERS_POLICY)
    await seed(store, configs)
    return store


async def refused(store: ConfigStore, config: AgentConfig) -> dict[str, str]:
    with pytest.raises(ConfigRefused) as caught:
        await store.create(config)
    with pytest.raises(AgentNotFound):
        await store.get(config.agent_id)
    return fields(caught.value.problems)


async def test_the_tool_list_as_a_whole_is_checked_on_create(seeded_store: ConfigStore) -> None:
    config = with_tools(
        lookup(url="http://127.0.0.1:8099/orders/{order_id}"),
        lookup(url="http://127.0.0.1:8099/orders/{order_id}"),
        transfer("helper-tools", "sales-agent-v1"),
        transfer("sales-agent-v1"),
        agent_id="helper-tools",
    )
    assert await refused(seeded_store, config) == {
        "tools.1.name": "'lookup_order' is already the name of tools.0",
        "tools.2.targets.0": "an agent type cannot transfer to itself",
        "tools.3.name": "'transfer_to_agent' is already the name of tools.2",
        "tools.3.kind": "one transfer_to_agent tool per agent type (tools.2 is one)",
    }


async def test_a_transfer_target_must_be_a_stored_type_that_is_not_archived(
    seeded_store: ConfigStore,
) -> None:
    await seeded_store.archive("pte-interview-agent-v1")
    await seeded_store.set_status("onboarding-agent-v1", AgentStatus.PAUSED)
    config = with_tools(
        transfer(
            "sales-agent-v1", "billing-agent", "pte-interview-agent-v1", "onboarding-agent-v1"
        ),
        agent_id="desk",
    )
    assert await refused(seeded_store, config) == {
        "tools.0.targets.1": "no agent type 'billing-agent'",
        "tools.0.targets.2": "agent type 'pte-interview-agent-v1' is archived",
    }


async def test_an_update_with_a_missing_target_keeps_the_current_version(
    seeded_store: ConfigStore,
) -> None:
    with pytest.raises(ConfigRefused) as caught:
        await seeded_store.update(with_tools(transfer("billing-agent")), expected_version=1)
    assert caught.value.problems == [
        ConfigProblem("tools.0.targets.0", "no agent type 'billing-agent'")
    ]
    assert (await seeded_store.get("support-agent-v1")).version == 1


async def test_rollback_to_a_version_whose_target_was_archived_since_is_refused(
    seeded_store: ConfigStore,
) -> None:
    await seeded_store.update(with_tools(transfer("sales-agent-v1")), expected_version=1)
    await seeded_store.update(with_tools(), expected_version=2)
    await seeded_store.archive("sales-agent-v1")
    with pytest.raises(ConfigRefused) as caught:
        await seeded_store.rollback("support-agent-v1", to_version=2)
    assert fields(caught.value.problems) == {
        "tools.0.targets.0": "agent type 'sales-agent-v1' is archived"
    }
    assert (await seeded_store.get("support-agent-v1")).version == 3
    # A status change files no definition: it is not refused for the archived target.
    await seeded_store.update(with_tools(transfer("onboarding-agent-v1")), expected_version=3)
    await seeded_store.archive("onboarding-agent-v1")
    paused = await seeded_store.set_status("support-agent-v1", AgentStatus.PAUSED)
    assert paused.version == 5 and paused.status == AgentStatus.PAUSED


async def test_a_plugin_must_be_installed_in_the_tools_entry_points(
    seeded_store: ConfigStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_tools(
        {"kind": "plugin", "name": "find_customer", "plugin": "crm_lookup"}, agent_id="crm-desk"
    )
    assert await refused(seeded_store, config) == {
        "tools.0.plugin": f"no tool 'crm_lookup' is installed in the {ENTRY_POINT_GROUP} entry points (installed: none)"
    }
    dist_info = tmp_path / "switchboard_crm_tools-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: switchboard-crm-tools\nVersion: 0.1.0\n"
    )
    # The module does not exist: a write names the entry point, it never imports the plugin.
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ncrm_lookup = crm_tools_absent:Lookup\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    created = await seeded_store.create(config)
    assert created.version == 1 and created.tools[0].kind == "plugin"


async def test_a_valid_tool_config_round_trips(seeded_store: ConfigStore) -> None:
    config = example()
    created = await seeded_store.create(config)
    assert await seeded_store.definition_problems(created) == []
    stored = await seeded_store.get(config.agent_id)
    assert stored.definition() == config.definition()
    assert stored.tools[0].headers["Authorization"].env == "ORDERS_API_TOKEN"


# -- seeding --------------------------------------------------------------------------------


async def test_seeding_reports_a_config_with_tool_problems_and_writes_the_others(
    database: AsyncDatabase,
) -> None:
    store = ConfigStore(database, ORDERS_POLICY)
    defaults, _ = load_config_dir(DEFAULTS_DIR)
    broken = with_tools(transfer("billing-agent"), agent_id="broken-desk")
    # The example comes first in the list but hands over to sales: sales is seeded before it.
    lines = {line.agent_id: line for line in await seed(store, [example(), broken, *defaults])}
    assert lines["broken-desk"].outcome == Outcome.FAILED
    assert lines["broken-desk"].detail == "tools.0.targets.0: no agent type 'billing-agent'"
    assert lines["support-tools-example"].outcome == Outcome.CREATED
    assert all(lines[c.agent_id].outcome == Outcome.CREATED for c in defaults)
    with pytest.raises(AgentNotFound):
        await store.get("broken-desk")


async def test_a_dry_run_counts_the_types_it_would_seed_as_targets(database: AsyncDatabase) -> None:
    store = ConfigStore(database, ORDERS_POLICY)
    defaults, _ = load_config_dir(DEFAULTS_DIR)
    lines = await seed(store, [example(), *defaults], dry_run=True)
    assert {line.outcome for line in lines} == {Outcome.CREATED}
    with pytest.raises(AgentNotFound):
        await store.get("support-tools-example")


def run_setup(
    endpoints: Endpoints, database_name: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("EGRESS_")
    }
    environment |= {
        "MONGO_URI": endpoints.mongo_uri,
        "MONGO_DB": database_name,
        "COLUMNS": "200",
    } | env
    return subprocess.run(
        [sys.executable, "scripts/setup_agents.py", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


async def test_the_example_is_seeded_from_its_directory_as_the_readme_says(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase
) -> None:
    policy = '{"OPENAI_API_KEY": ["api.openai.com"], "ORDERS_API_TOKEN": ["127.0.0.1:8099"]}'
    before_sales = run_setup(
        endpoints, database_name, "--dir", "agent_configs/examples", EGRESS_SECRETS=policy
    )
    assert before_sales.returncode == 1
    assert "failed (tools.1.targets.0: no agent type 'sales-agent-v1')" in before_sales.stdout
    assert run_setup(endpoints, database_name).returncode == 0
    refused_run = run_setup(endpoints, database_name, "--dir", "agent_configs/examples")
    assert refused_run.returncode == 1
    assert (
        "tools.0.headers.Authorization.env: ORDERS_API_TOKEN is not a key configs may use"
        in refused_run.stdout
    )
    seeded = run_setup(
        endpoints, database_name, "--dir", "agent_configs/examples", EGRESS_SECRETS=policy
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "support-tools-example" in seeded.stdout and "created" in seeded.stdout
    stored = await ConfigStore(database, ORDERS_POLICY).get("support-tools-example")
    assert stored.tools[1].targets == ["sales-agent-v1"]


# -- what the model may set -----------------------------------------------------------------


def test_parameters_default_to_no_other_properties_than_those_declared() -> None:
    [tool] = with_tools(lookup()).tools
    assert tool.parameters["additionalProperties"] is False
    [empty] = with_tools(
        {
            "kind": "http",
            "name": "all_orders",
            "description": "All orders.",
            "url": "https://orders.example/all",
        }
    ).tools
    assert empty.parameters == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    open_schema = lookup(parameters={"type": "object", "additionalProperties": True})
    [said] = with_tools(open_schema | {"url": "https://orders.example/all"}).tools
    assert said.parameters["additionalProperties"] is True


def test_a_parameter_the_url_binds_from_the_session_is_refused_where_it_is_declared() -> None:
    parameters = {
        "type": "object",
        "properties": {
            "owner": {"type": "string"},
            "user_id": {"type": "string"},
            "status": {"type": "string"},
        },
    }
    config = with_tools(
        lookup(
            url="https://orders.example/users/{user_id}/orders?owner={user_id}&s={status}",
            parameters=parameters,
        )
    )
    assert fields([ConfigProblem(*p) for p in tool_problems(config.tools, config.agent_id)]) == {
        "tools.0.parameters.properties.owner": (
            "owner is taken from the session in the url (owner={user_id}): the model cannot set it"
        ),
        "tools.0.parameters.properties.user_id": (
            "user_id is taken from the session in the url ({user_id}): the model cannot set it"
        ),
    }
