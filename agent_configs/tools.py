"""Tools an agent type may call, declared as data in its config (`tools:`), versioned with it.

Kinds (`kind`):
- `http`: one HTTP request to a URL the egress policy allows; arguments go into the URL
  template (`{order_id}`), then the query string (GET/DELETE) or a JSON body; header values
  come from env vars the policy lets go to that host, from safe session values, or are plain
  non-secret constants.
- `end_session`, `transfer_to_agent`, `escalate_to_human`: built-ins the worker implements.
- `plugin`: a Python tool registered in the `switchboard.tools` entry-point group.
- `mcp`: the tools of an MCP server (streamable HTTP), subject to the egress policy.

What can be checked from the config alone is checked here (names, JSON Schema of the
parameters, URL placeholders, a parameter the URL binds from the session, a transfer to
itself); what needs the world is checked where the world is: the egress policy
(agent_configs/egress.py, headers included), transfer targets that exist
(agent_configs/store.py), plugins that are installed (the tool registry).
"""

import string
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent_configs.secret_guard import reject_secret_value

Text = Annotated[str, AfterValidator(reject_secret_value)]
ToolName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
TargetSlug = Annotated[
    str, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
HeaderName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$")]

MAX_TOOLS = 32
SESSION_VALUES = ("session_id", "agent_id", "user_id", "room")
"""What a URL or header may take from the session besides the model's arguments. Nothing a
participant can set freely: `user_id` is the trusted one (worker/metadata.py)."""


class ToolKind(StrEnum):
    HTTP = "http"
    END_SESSION = "end_session"
    TRANSFER_TO_AGENT = "transfer_to_agent"
    ESCALATE_TO_HUMAN = "escalate_to_human"
    PLUGIN = "plugin"
    MCP = "mcp"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True)


def _valid_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (2020-12) for an object: what the model's arguments must satisfy.

    `additionalProperties` is false unless the config says otherwise: an argument the schema
    does not declare would go into the query string or the body as it is, so the model could
    add any field there (`?owner=u-2` beside the session's `?owner={user_id}`)."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the schema"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
    if schema.get("type") != "object":
        raise ValueError('must be a JSON Schema of type "object" (the arguments are named)')
    if "additionalProperties" not in schema:
        schema = {**schema, "additionalProperties": False}
    return schema


Parameters = Annotated[dict[str, Any], AfterValidator(_valid_parameters)]
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class HeaderValue(_Spec):
    """Exactly one source: `env` (a secret the egress policy lets go to the URL's host),
    `session` (one of SESSION_VALUES), or `value` (a constant, checked by the secret guard)."""

    env: EnvVarName | None = None
    session: Literal["session_id", "agent_id", "user_id", "room"] | None = None
    value: Text | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _one_source(self) -> "HeaderValue":
        given = [name for name in ("env", "session", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `env`, `session` or `value`")
        return self


class _ToolBase(_Spec):
    name: ToolName
    description: Text = Field(min_length=1, max_length=1000)


class HttpTool(_ToolBase):
    kind: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    parameters: Parameters = Field(default_factory=lambda: dict(NO_PARAMETERS))
    """Declared before `url`, so the url's check of its placeholders can read it."""
    url: Text = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    """`{name}` placeholders take an argument (URL-encoded) or a session value."""
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=20)
    timeout_s: float = Field(default=5.0, gt=0.0, le=30.0)
    result_pointer: str | None = Field(
        default=None, pattern=r"^(/([^~/]|~[01])*)*$", max_length=512
    )
    """RFC 6901 JSON pointer into the response: only that part goes back to the model."""
    max_result_chars: int = Field(default=2000, ge=50, le=20_000)
    waiting_message: Text | None = Field(default=None, max_length=300)
    """Said (voice) or shown (text) while the request runs, e.g. "Let me look that up"."""

    @field_validator("url")
    @classmethod
    def _placeholders_are_known(cls, url: str, info: ValidationInfo) -> str:
        """A field validator, not a model one, so the problem is reported at `url`."""
        parameters = info.data.get("parameters")
        if parameters is None:
            return url  # `parameters` is invalid and reported itself; nothing to compare with
        properties = set((parameters.get("properties") or {}).keys())
        for name in url_placeholders(url):
            if name not in properties and name not in SESSION_VALUES:
                raise ValueError(
                    f"placeholder {{{name}}} is neither a parameter nor a session value "
                    f"({', '.join(SESSION_VALUES)})"
                )
        return url


def url_placeholders(url: str) -> list[str]:
    """The `{name}` fields of a URL template; `{{` and `}}` are literal braces."""
    try:
        return [field for _, field, _, _ in string.Formatter().parse(url) if field is not None]
    except ValueError as exc:
        raise ValueError(f"url template: {exc}") from None


def session_bound_names(url: str) -> dict[str, str]:
    """The argument names a URL template binds from the session, each with where it does so:
    a session placeholder (`user_id`: `{user_id}`) and a query key whose value holds one
    (`owner`: `owner={user_id}`). The model may not set them: its value would go beside the
    session's, into the query (`?owner=me&owner=u-2`) or the body, and a server may read either."""
    bound: dict[str, str] = {}
    for name in url_placeholders(url):
        if name in SESSION_VALUES:
            bound.setdefault(name, f"{{{name}}}")
    query = url.partition("#")[0].partition("?")[2]
    for pair in query.split("&"):
        key, equals, value = pair.partition("=")
        try:
            takes_session = any(name in SESSION_VALUES for name in url_placeholders(value))
        except ValueError:  # a brace split across pairs: not a key=value this reads
            continue
        if equals and takes_session:
            bound.setdefault(unquote_plus(key), pair)
    return bound


class EndSessionTool(_ToolBase):
    kind: Literal["end_session"] = "end_session"
    name: ToolName = "end_session"
    description: Text = Field(
        default="End the conversation when the user is done or says goodbye.",
        min_length=1,
        max_length=1000,
    )
    goodbye: Text | None = Field(default=None, max_length=500)
    """Said before the session ends; without it the model's own last words are the goodbye."""


ContextCarry = Literal["full", "summary", "none"]


class TransferToAgentTool(_ToolBase):
    kind: Literal["transfer_to_agent"] = "transfer_to_agent"
    name: ToolName = "transfer_to_agent"
    description: Text = Field(
        default="Hand the conversation to a colleague agent better suited to what the user needs.",
        min_length=1,
        max_length=1000,
    )
    targets: list[TargetSlug] = Field(min_length=1, max_length=20)
    """The agent types the model may hand over to (each must exist; never the type itself)."""
    context: ContextCarry = "full"
    """What the new agent gets: the whole conversation, a summary of it, or nothing."""


class EscalateToHumanTool(_ToolBase):
    kind: Literal["escalate_to_human"] = "escalate_to_human"
    name: ToolName = "escalate_to_human"
    description: Text = Field(
        default="Ask for a human colleague when you cannot help or the user asks for a person.",
        min_length=1,
        max_length=1000,
    )
    then: Literal["continue", "hold", "end"] = "continue"
    """After the escalation event: keep talking, stop answering until a human takes over, or end."""
    message: Text | None = Field(default=None, max_length=500)


class PluginTool(_ToolBase):
    kind: Literal["plugin"] = "plugin"
    plugin: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.-]*$")]
    """The entry-point name in the `switchboard.tools` group."""
    description: Text | None = Field(default=None, max_length=1000)  # type: ignore[assignment]
    """Overrides the plugin's own description, when given."""
    options: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], Text | int | float | bool
    ] = Field(default_factory=dict, max_length=50)


class McpTools(_Spec):
    """The tools of one MCP server; `name` prefixes nothing, it names the server in records."""

    kind: Literal["mcp"] = "mcp"
    name: ToolName
    url: Text = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=20)
    allowed_tools: list[ToolName] | None = Field(default=None, max_length=100)
    """Only these of the server's tools (all when absent)."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=60.0)


ToolSpec = Annotated[
    HttpTool | EndSessionTool | TransferToAgentTool | EscalateToHumanTool | PluginTool | McpTools,
    Field(discriminator="kind"),
]


def tool_problems(tools: list[Any], agent_id: str) -> list[tuple[str, str]]:
    """(field path, message) for what the list as a whole gets wrong: a name used twice, more
    than one transfer or escalation tool, a transfer to the type itself; and a parameter the
    model could set although the tool's URL binds it from the session.

    Checked when a definition is written, not when one is read: a config stored before keeps
    loading, and the http tool leaves such an argument out when it is called."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for index, tool in enumerate(tools):
        if isinstance(tool, HttpTool):
            problems += _session_bound_parameters(tool, f"tools.{index}")
        if tool.name in seen:
            problems.append(
                (
                    f"tools.{index}.name",
                    f"'{tool.name}' is already the name of tools.{seen[tool.name]}",
                )
            )
        seen.setdefault(tool.name, index)
        if isinstance(tool, TransferToAgentTool):
            for t, target in enumerate(tool.targets):
                if target == agent_id:
                    problems.append(
                        (f"tools.{index}.targets.{t}", "an agent type cannot transfer to itself")
                    )
            if len(set(tool.targets)) != len(tool.targets):
                problems.append((f"tools.{index}.targets", "each target may be listed once"))
    for kind in (ToolKind.TRANSFER_TO_AGENT, ToolKind.ESCALATE_TO_HUMAN, ToolKind.END_SESSION):
        indexes = [i for i, tool in enumerate(tools) if tool.kind == kind]
        for extra in indexes[1:]:
            problems.append(
                (
                    f"tools.{extra}.kind",
                    f"one {kind} tool per agent type (tools.{indexes[0]} is one)",
                )
            )
    return problems


def _session_bound_parameters(tool: HttpTool, field: str) -> list[tuple[str, str]]:
    declared = tool.parameters.get("properties") or {}
    return [
        (
            f"{field}.parameters.properties.{name}",
            f"{name} is taken from the session in the url ({where}): the model cannot set it",
        )
        for name, where in session_bound_names(tool.url).items()
        if name in declared
    ]


def transfer_targets(tools: list[Any]) -> list[tuple[str, str]]:
    """(field path, agent_id) of every transfer target, for the store to check they exist."""
    return [
        (f"tools.{index}.targets.{t}", target)
        for index, tool in enumerate(tools)
        if isinstance(tool, TransferToAgentTool)
        for t, target in enumerate(tool.targets)
    ]
