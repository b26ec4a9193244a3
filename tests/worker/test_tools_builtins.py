"""The built-in tools ask the session's controls (here a stand-in that records what it was
asked) and give the model what the controls answer; bad arguments never reach them."""

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import llm

from agent_configs.egress import EgressPolicy
from tests.factories import support_config
from tests.worker.tool_calls import call
from worker.tools import ToolCallLog, ToolContext, build_tools


@dataclass
class RecordingControls:
    asked: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def end_session(self, reason: str, goodbye: str | None) -> str:
        return self._answer("end_session", reason, goodbye)

    async def transfer(self, target: str, reason: str, context: str) -> str:
        return self._answer("transfer", target, reason, context)

    async def escalate(self, reason: str, then: str, message: str | None) -> str:
        return self._answer("escalate", reason, then, message)

    def _answer(self, name: str, *arguments: Any) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.asked.append((name, arguments))
        return f"{name} done"


@pytest.fixture
def controls() -> RecordingControls:
    return RecordingControls()


@pytest.fixture
def context(controls: RecordingControls) -> ToolContext:
    return ToolContext(
        session_id="sess-1",
        agent_id="support",
        user_id=None,
        room="room-a",
        egress=EgressPolicy(_env_file=None),
        log=ToolCallLog(),
        controls=controls,
        say=None,
    )


TOOLS = [
    {"kind": "end_session", "goodbye": "Thanks for calling, goodbye!"},
    {"kind": "transfer_to_agent", "targets": ["sales", "billing"], "context": "summary"},
    {"kind": "escalate_to_human", "then": "hold", "message": "A colleague will join shortly."},
]


async def tools_by_name(context: ToolContext) -> dict[str, llm.RawFunctionTool]:
    tools = await build_tools(support_config(tools=TOOLS), context)
    return {tool.info.name: tool for tool in tools if isinstance(tool, llm.RawFunctionTool)}


async def test_the_model_sees_the_transfer_targets_as_an_enum_and_a_required_reason(
    context: ToolContext,
) -> None:
    tools = await tools_by_name(context)
    (schema,) = [
        t["function"]
        for t in llm.ToolContext(list(tools.values())).parse_function_tools("openai", strict=False)
        if t["function"]["name"] == "transfer_to_agent"
    ]
    assert schema["parameters"]["properties"]["target"]["enum"] == ["sales", "billing"]
    assert schema["parameters"]["required"] == ["target", "reason"]
    assert set(tools) == {"end_session", "transfer_to_agent", "escalate_to_human"}


async def test_transfer_asks_the_controls_with_the_configured_context_rule(
    context: ToolContext, controls: RecordingControls
) -> None:
    tools = await tools_by_name(context)
    result = await call(tools["transfer_to_agent"], {"target": "billing", "reason": "a refund"})

    assert result == "transfer done"
    assert controls.asked == [("transfer", ("billing", "a refund", "summary"))]
    (record,) = context.log.drain()
    assert (record.name, record.ok, record.arguments) == (
        "transfer_to_agent",
        True,
        {"target": "billing", "reason": "a refund"},
    )


async def test_a_transfer_to_a_type_not_in_the_targets_never_reaches_the_controls(
    context: ToolContext, controls: RecordingControls
) -> None:
    tools = await tools_by_name(context)
    result = json.loads(
        await call(tools["transfer_to_agent"], {"target": "support", "reason": "again"})
    )

    assert result == {
        "error": "invalid arguments: target: 'support' is not one of ['sales', 'billing']"
    }
    assert controls.asked == []
    (record,) = context.log.drain()
    assert not record.ok


async def test_end_session_passes_the_reason_and_the_configured_goodbye(
    context: ToolContext, controls: RecordingControls
) -> None:
    tools = await tools_by_name(context)
    assert await call(tools["end_session"], {"reason": "the user said bye"}) == "end_session done"
    assert controls.asked == [
        ("end_session", ("the user said bye", "Thanks for calling, goodbye!"))
    ]


async def test_escalate_passes_what_happens_next_and_the_message(
    context: ToolContext, controls: RecordingControls
) -> None:
    tools = await tools_by_name(context)
    assert await call(tools["escalate_to_human"], {"reason": "wants a person"}) == "escalate done"
    assert controls.asked == [
        ("escalate", ("wants a person", "hold", "A colleague will join shortly."))
    ]


async def test_a_control_that_fails_gives_an_error_result_and_the_session_goes_on(
    context: ToolContext, controls: RecordingControls
) -> None:
    tools = await tools_by_name(context)
    controls.fail_with = RuntimeError("capacity store unreachable")

    result = json.loads(
        await call(tools["transfer_to_agent"], {"target": "sales", "reason": "pricing"})
    )

    assert result == {"error": "internal error (RuntimeError)"}
    (record,) = context.log.drain()
    assert (record.ok, record.error) == (False, "internal error (RuntimeError)")
    assert record.as_dict()["error"] == "internal error (RuntimeError)"


async def test_a_record_without_error_has_no_error_key_when_published(context: ToolContext) -> None:
    tools = await tools_by_name(context)
    await call(tools["end_session"], {"reason": "done"})
    (record,) = context.log.drain()
    assert record.as_dict() == {
        "name": "end_session",
        "arguments": {"reason": "done"},
        "ok": True,
        "duration_ms": record.duration_ms,
        "result_preview": "end_session done",
    }
    assert context.log.drain() == []
