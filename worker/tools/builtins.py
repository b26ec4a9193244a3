"""The built-in tools: end_session, transfer_to_agent, escalate_to_human.

Each is a livekit raw function tool whose parameters the model fills (a reason, and for a
transfer the target, enumerated from the config so the model picks from the allowed list);
what it does is the session's business (`context.controls`, worker/conversation.py), and what
the controls return is the result the model reads. Calls are validated and recorded like any
other tool's (worker/tools/context.py).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import llm

from agent_configs.tools import EndSessionTool, EscalateToHumanTool, TransferToAgentTool
from worker.tools.context import ToolContext, arguments_validator, recorded_call

REASON = {"type": "string", "minLength": 1, "maxLength": 500}


def end_session_tool(spec: EndSessionTool, context: ToolContext, field: str) -> llm.RawFunctionTool:
    parameters = _object(
        reason={**REASON, "description": "Why the conversation ends, in a few words."}
    )
    return _builtin(
        spec.name,
        spec.kind,
        spec.description,
        parameters,
        context,
        lambda arguments: context.controls.end_session(arguments["reason"], spec.goodbye),
    )


def transfer_to_agent_tool(
    spec: TransferToAgentTool, context: ToolContext, field: str
) -> llm.RawFunctionTool:
    parameters = _object(
        target={
            "type": "string",
            "enum": list(spec.targets),
            "description": "The agent type to hand over to.",
        },
        reason={**REASON, "description": "What the user needs, for the colleague taking over."},
    )
    return _builtin(
        spec.name,
        spec.kind,
        spec.description,
        parameters,
        context,
        lambda arguments: context.controls.transfer(
            arguments["target"], arguments["reason"], spec.context
        ),
    )


def escalate_to_human_tool(
    spec: EscalateToHumanTool, context: ToolContext, field: str
) -> llm.RawFunctionTool:
    parameters = _object(reason={**REASON, "description": "Why a human is needed."})
    return _builtin(
        spec.name,
        spec.kind,
        spec.description,
        parameters,
        context,
        lambda arguments: context.controls.escalate(arguments["reason"], spec.then, spec.message),
    )


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _builtin(
    name: str,
    kind: str,
    description: str,
    parameters: dict[str, Any],
    context: ToolContext,
    act: Callable[[dict[str, Any]], Awaitable[str]],
) -> llm.RawFunctionTool:
    validator = arguments_validator(parameters)

    async def call_builtin_tool(raw_arguments: dict[str, Any]) -> str:
        return await recorded_call(
            context,
            name=name,
            kind=kind,
            arguments=raw_arguments,
            validator=validator,
            body=lambda: act(raw_arguments),
        )

    return llm.function_tool(
        call_builtin_tool,
        raw_schema={"name": name, "description": description, "parameters": parameters},
    )
