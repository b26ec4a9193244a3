"""Calling a built tool the way livekit does, for the tests of each tool kind."""

import json
from typing import Any

from livekit.agents import llm
from livekit.agents.llm import utils as llm_utils


async def call(tool: llm.FunctionTool | llm.RawFunctionTool, arguments: dict[str, Any]) -> str:
    """The model's JSON arguments prepared as livekit prepares them, then the tool awaited."""
    args, kwargs = llm_utils.prepare_function_arguments(
        fnc=tool, json_arguments=json.dumps(arguments)
    )
    result = await tool(*args, **kwargs)
    assert isinstance(result, str)
    return result
