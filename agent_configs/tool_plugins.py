"""Which `plugin` tools exist: the `switchboard.tools` entry points of installed packages.

A package adds a tool by declaring, in its own pyproject.toml:

    [project.entry-points."switchboard.tools"]
    crm_lookup = "my_package.tools:CrmLookup"

and a config can then say `{"kind": "plugin", "name": "lookup_customer", "plugin": "crm_lookup"}`.
Writes only check that the name is installed: a plugin is never imported by the admin API or
seeding (its code, and its import-time side effects, belong to the worker that runs it).
"""

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from agent_configs.errors import ConfigProblem
from agent_configs.tools import PluginTool

ENTRY_POINT_GROUP = "switchboard.tools"


def installed_tool_plugins(group: str = ENTRY_POINT_GROUP) -> set[str]:
    """Entry-point names in `group`, read from the installed distributions' metadata."""
    return {point.name for point in entry_points(group=group)}


def plugin_problems(tools: Sequence[Any], group: str = ENTRY_POINT_GROUP) -> list[ConfigProblem]:
    """`tools.N.plugin` for each plugin tool naming an entry point that is not installed."""
    wanted = [
        (index, tool.plugin) for index, tool in enumerate(tools) if isinstance(tool, PluginTool)
    ]
    if not wanted:
        return []  # reading every distribution's metadata costs a few ms: only when needed
    installed = installed_tool_plugins(group)
    known = ", ".join(sorted(installed)) or "none"
    return [
        ConfigProblem(
            f"tools.{index}.plugin",
            f"no tool '{name}' is installed in the {group} entry points (installed: {known})",
        )
        for index, name in wanted
        if name not in installed
    ]
