"""Custom tools from the `switchboard.tools` entry points: a package installed for the test
(a dist-info directory on sys.path, which is all `importlib.metadata` reads) provides good and
broken plugins; configs reference them by name."""

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import llm

from agent_configs.egress import EgressPolicy
from tests.factories import support_config
from tests.worker.tool_calls import call
from worker.tools import ToolBuildError, ToolCallLog, ToolContext, build_tools
from worker.tools.plugins import ToolPluginRegistry

PLUGIN_MODULE = """
from worker.tools import ToolFailure


class OrderStatus:
    description = "Look up an order's status."
    parameters = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}

    def __init__(self, region: str = "eu") -> None:
        self.region = region

    async def call(self, arguments, context):
        if arguments["order_id"] == "0":
            raise ToolFailure("no order 0 in " + self.region)
        if arguments["order_id"] == "crash":
            raise KeyError("bug")
        return {"order_id": arguments["order_id"], "region": self.region, "session": context.session_id}


class NoCall:
    description = "Nothing to call."
    parameters = {"type": "object"}


class BadSchema:
    description = "Parameters that are not JSON Schema."
    parameters = {"type": "object", "properties": {"x": {"type": "decimal"}}}

    async def call(self, arguments, context):
        return "never"


def not_a_class():
    return None
"""

ENTRY_POINTS = """
[switchboard.tools]
order_status = switchboard_fixture_tools:OrderStatus
no_call = switchboard_fixture_tools:NoCall
bad_schema = switchboard_fixture_tools:BadSchema
not_a_class = switchboard_fixture_tools:not_a_class
not_importable = switchboard_fixture_missing:Thing
"""


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolPluginRegistry:
    dist = tmp_path / "switchboard_fixture_tools-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: switchboard-fixture-tools\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    (tmp_path / "switchboard_fixture_tools.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ToolPluginRegistry.with_plugins()


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(
        session_id="sess-9",
        agent_id="support",
        user_id=None,
        room="room-p",
        egress=EgressPolicy(_env_file=None),
        log=ToolCallLog(),
        controls=None,  # type: ignore[arg-type]  # a plugin tool called outside a session
        say=None,
    )


def plugin_spec(**changes: Any) -> dict[str, Any]:
    return {"kind": "plugin", "name": "order_lookup", "plugin": "order_status"} | changes


def test_plugins_without_the_tool_shape_are_recorded_with_what_is_wrong(
    registry: ToolPluginRegistry,
) -> None:
    assert registry.names() == ["order_status"]
    errors = registry.plugin_errors
    assert (
        errors["no_call"]
        == "switchboard_fixture_tools:NoCall has no `async def call(self, arguments, context)` method"
    )
    assert errors["bad_schema"].startswith(
        "switchboard_fixture_tools:BadSchema has `parameters` that are not a valid JSON Schema"
    )
    assert (
        errors["not_a_class"]
        == "switchboard_fixture_tools:not_a_class is a function, not a tool class"
    )
    assert errors["not_importable"].startswith(
        "cannot load switchboard_fixture_missing:Thing: ModuleNotFoundError"
    )


async def test_a_plugin_tool_gets_its_options_checked_arguments_and_the_session(
    registry: ToolPluginRegistry, context: ToolContext
) -> None:
    config = support_config(tools=[plugin_spec(options={"region": "us"})])
    (tool,) = await build_tools(config, context, plugins=registry)
    assert isinstance(tool, llm.RawFunctionTool)
    assert tool.info.raw_schema["description"] == "Look up an order's status."
    assert tool.info.name == "order_lookup"

    result = json.loads(await call(tool, {"order_id": "77"}))
    invalid = json.loads(await call(tool, {"order": "77"}))

    assert result == {"order_id": "77", "region": "us", "session": "sess-9"}
    assert invalid == {"error": "invalid arguments: 'order_id' is a required property"}
    assert [(r.name, r.ok) for r in context.log.drain()] == [
        ("order_lookup", True),
        ("order_lookup", False),
    ]


async def test_a_plugin_failure_is_an_error_result_the_model_reads(
    registry: ToolPluginRegistry, context: ToolContext
) -> None:
    config = support_config(tools=[plugin_spec(description="Find an order by number.")])
    (tool,) = await build_tools(config, context, plugins=registry)
    assert isinstance(tool, llm.RawFunctionTool)
    assert tool.info.raw_schema["description"] == "Find an order by number."

    assert json.loads(await call(tool, {"order_id": "0"})) == {"error": "no order 0 in eu"}
    assert json.loads(await call(tool, {"order_id": "crash"})) == {
        "error": "internal error (KeyError)"
    }
    assert [r.error for r in context.log.drain()] == [
        "no order 0 in eu",
        "internal error (KeyError)",
    ]


async def test_a_config_naming_a_missing_or_broken_plugin_names_each_field(
    registry: ToolPluginRegistry, context: ToolContext
) -> None:
    config = support_config(
        tools=[
            plugin_spec(),
            plugin_spec(name="broken", plugin="no_call"),
            plugin_spec(name="absent", plugin="not_installed"),
            plugin_spec(name="wrong_options", options={"colour": "red"}),
        ]
    )
    with pytest.raises(ToolBuildError) as refused:
        await build_tools(config, context, plugins=registry)

    fields = [field for field, _ in refused.value.problems]
    assert fields == ["tools.1.plugin", "tools.2.plugin", "tools.3.options"]
    messages = dict(refused.value.problems)
    assert "has no `async def call" in messages["tools.1.plugin"]
    assert messages["tools.2.plugin"] == (
        "'not_installed' is not installed in this worker (entry-point group switchboard.tools; known: order_status)"
    )
    assert messages["tools.3.options"] == (
        "plugin 'order_status' refuses them: OrderStatus.__init__() got an unexpected keyword argument 'colour'"
    )
