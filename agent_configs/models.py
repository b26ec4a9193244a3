"""What an agent type is: the pydantic models stored in MongoDB and served by the admin API.

Every string goes through the secret guard, unknown keys are refused (a typo such as
`temprature` must not be silently ignored), and the per-turn schema can build the JSON Schema
and the pydantic model that each structured turn has to satisfy.
"""

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from agent_configs.secret_guard import reject_secret_value
from agent_configs.templates import check_template
from agent_configs.tools import MAX_TOOLS, ToolKind, ToolSpec

SYSTEM_RESPONSE = "system_response"

Text = Annotated[str, AfterValidator(reject_secret_value)]
Slug = Annotated[
    str,
    Field(min_length=2, max_length=64, pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"),
    AfterValidator(reject_secret_value),
]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
HttpUrl = Annotated[Text, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
OptionValue = Text | int | float | bool

_SECRET_OPTION_NAMES = ("key", "secret", "token", "password", "credential")


def repeated(values: list[str]) -> list[str]:
    """The values that occur more than once, sorted: for "listed twice" validation errors."""
    return sorted({v for v in values if values.count(v) > 1})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True)


def _reject_secret_options(options: dict[str, OptionValue]) -> dict[str, OptionValue]:
    for name in options:
        if any(word in name.lower() for word in _SECRET_OPTION_NAMES):
            raise ValueError(
                f"option '{name}' would hold a secret; name an environment variable in "
                "`api_key_env` instead"
            )
    return options


ProviderOptions = Annotated[dict[Identifier, OptionValue], AfterValidator(_reject_secret_options)]


class AgentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class Modality(StrEnum):
    VOICE = "voice"
    TEXT = "text"


class LLMSpec(_Spec):
    """One language model. `base_url` makes any OpenAI-compatible server usable."""

    provider: Slug = "local"
    model: Text = Field(min_length=1, max_length=200)
    base_url: HttpUrl | None = None
    api_key_env: EnvVarName | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    fallback: list["LLMSpec"] = Field(default_factory=list, max_length=5)
    options: ProviderOptions = Field(default_factory=dict)

    @field_validator("fallback")
    @classmethod
    def _fallbacks_are_flat(cls, fallback: list["LLMSpec"]) -> list["LLMSpec"]:
        if any(spec.fallback for spec in fallback):
            raise ValueError(
                "a fallback model cannot have fallbacks of its own; list them all here"
            )
        return fallback


class STTSpec(_Spec):
    provider: Slug = "local"
    model: Text = Field(min_length=1, max_length=200)
    language: Text = Field(default="en", min_length=2, max_length=16)
    base_url: HttpUrl | None = None
    api_key_env: EnvVarName | None = None
    options: ProviderOptions = Field(default_factory=dict)


class TTSSpec(_Spec):
    provider: Slug = "local"
    model: Text = Field(min_length=1, max_length=200)
    voice: Text | None = Field(default=None, max_length=200)
    language: Text = Field(default="en", min_length=2, max_length=16)
    speed: float = Field(default=1.0, gt=0.25, le=4.0)
    base_url: HttpUrl | None = None
    api_key_env: EnvVarName | None = None
    options: ProviderOptions = Field(default_factory=dict)


class VADSpec(_Spec):
    provider: Literal["silero"] = "silero"
    activation_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    min_speech_duration_s: float = Field(default=0.05, ge=0.0, le=5.0)
    min_silence_duration_s: float = Field(default=0.55, ge=0.0, le=10.0)


class FieldType(StrEnum):
    STRING = "string"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    ENUM = "enum"
    LIST = "list"


class TurnField(_Spec):
    """One value the agent fills on every turn, e.g. `issue_category` or `sentiment`."""

    name: Identifier
    type: FieldType
    description: Text = Field(min_length=1, max_length=1000)
    required: bool = True
    enum: list[Identifier] | None = Field(default=None, min_length=1, max_length=50)
    min: float | None = None
    max: float | None = None
    max_items: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> "TurnField":
        if self.type == FieldType.ENUM:
            if not self.enum:
                raise ValueError("an enum field needs `enum` values")
            if len(set(self.enum)) != len(self.enum):
                raise ValueError("`enum` values must be unique")
        elif self.enum is not None:
            raise ValueError(f"`enum` values only apply to type enum, not {self.type}")
        numeric = self.type in (FieldType.INT, FieldType.NUMBER)
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"`min`/`max` only apply to int and number fields, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        if self.max_items is not None and self.type != FieldType.LIST:
            raise ValueError(f"`max_items` only applies to list fields, not {self.type}")
        return self

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"description": self.description}
        match self.type:
            case FieldType.STRING:
                schema["type"] = "string"
            case FieldType.ENUM:
                schema.update(type="string", enum=list(self.enum or []))
            case FieldType.BOOL:
                schema["type"] = "boolean"
            case FieldType.INT | FieldType.NUMBER:
                schema["type"] = "integer" if self.type == FieldType.INT else "number"
                if self.min is not None:
                    schema["minimum"] = int(self.min) if self.type == FieldType.INT else self.min
                if self.max is not None:
                    schema["maximum"] = int(self.max) if self.type == FieldType.INT else self.max
            case FieldType.LIST:
                schema.update(type="array", items={"type": "string"})
                if self.max_items is not None:
                    schema["maxItems"] = self.max_items
        if not self.required:
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        return schema

    def python_type(self) -> Any:
        match self.type:
            case FieldType.STRING:
                annotated: Any = str
            case FieldType.ENUM:
                annotated = Literal[tuple(self.enum or [])]
            case FieldType.BOOL:
                annotated = bool
            case FieldType.INT:
                annotated = Annotated[int, Field(ge=self.min, le=self.max)]
            case FieldType.NUMBER:
                annotated = Annotated[float, Field(ge=self.min, le=self.max)]
            case FieldType.LIST:
                annotated = Annotated[list[str], Field(max_length=self.max_items)]
        return annotated if self.required else annotated | None


_SYSTEM_RESPONSE_FIELD = TurnField(
    name=SYSTEM_RESPONSE,
    type=FieldType.STRING,
    description="What the agent says to the user in this turn: the words they hear or read.",
)


class TurnFill(StrEnum):
    """When a turn's fields are filled.

    `with_reply`: the reply and its fields come from one constrained call, the reply streamed
    to the user as it is written (one LLM request per turn). `after_reply`: the reply is free
    text and a second call fills the fields afterwards (two requests; for models that answer
    worse when constrained to JSON, or endpoints without JSON-schema output).
    """

    WITH_REPLY = "with_reply"
    AFTER_REPLY = "after_reply"


class TurnSchema(_Spec):
    """The structured output of every turn. `system_response` is always its first field."""

    schema_id: Slug
    fields: list[TurnField] = Field(default_factory=list, max_length=40)
    fill: TurnFill = TurnFill.WITH_REPLY

    @field_validator("fields")
    @classmethod
    def _system_response_first(cls, fields: list[TurnField]) -> list[TurnField]:
        duplicates = repeated([f.name for f in fields])
        if duplicates:
            raise ValueError(f"duplicate field names: {', '.join(duplicates)}")
        given = next((f for f in fields if f.name == SYSTEM_RESPONSE), None)
        if given is not None and (given.type != FieldType.STRING or not given.required):
            raise ValueError("`system_response` must be a required string field")
        rest = [f for f in fields if f.name != SYSTEM_RESPONSE]
        return [given or _SYSTEM_RESPONSE_FIELD, *rest]

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema for constrained decoding: every key present, optional ones nullable."""
        return {
            "title": self.schema_id,
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "required": self.field_names,
            "additionalProperties": False,
        }

    @cached_property
    def turn_model(self) -> type[BaseModel]:
        """A pydantic model that validates one filled turn."""
        definitions: dict[str, Any] = {
            f.name: (f.python_type(), ... if f.required else None) for f in self.fields
        }
        return create_model(
            self.schema_id,
            __config__=ConfigDict(extra="forbid", strict=False),
            **definitions,
        )

    def validate_turn(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate one filled turn; raises pydantic.ValidationError naming each bad field."""
        return self.turn_model.model_validate(values).model_dump()


class MemorySpec(_Spec):
    """Remembering a user across sessions of the same agent type."""

    enabled: bool = False
    max_past_turns: int = Field(default=20, ge=1, le=200)


class SummarySpec(_Spec):
    """The closing summary (one LLM call at session end), to the room and the session record."""

    enabled: bool = True
    max_tokens: int = Field(default=160, ge=16, le=4096)
    """The most the summary may generate (its request's `max_tokens`); a transfer's
    `context: summary` note is asked for with the same cap. Two or three sentences take the
    embedded model 40-60 tokens (bench/tokens.py)."""


LLM_UNAVAILABLE_MESSAGE = (
    "Sorry, I can't answer right now: my language service is not responding. "
    "Please try again in a moment."
)


class LLMUnavailableSpec(_Spec):
    """What the user is told when no configured model answers a message.

    A failed reply (the primary and every fallback refused, errored or timed out) is tried
    again for `after_s` seconds from the user's message, so a model restarting for a few
    seconds is never noticed; then the user gets `message`, spoken in a voice session and
    typed (`lk.transcription`) in every session, and the message is recorded as a `failed`
    turn. A request that is still waiting for its first token when `after_s` passes runs on
    until the model's own timeout: a slow model is not a failed one.
    """

    after_s: float = Field(default=8.0, ge=1.0, le=120.0)
    message: Text = Field(default=LLM_UNAVAILABLE_MESSAGE, min_length=1, max_length=500)


class IntentSpec(_Spec):
    """Keywords that hand a conversation to this agent type (see routing/intents.py)."""

    name: Identifier
    keywords: list[Annotated[Text, Field(min_length=2, max_length=100)]] = Field(
        min_length=1, max_length=100
    )
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)


class AgentConfig(_Spec):
    """One agent type. `version`, `created_at` and `updated_at` are owned by the store."""

    agent_id: Slug
    name: Text = Field(min_length=1, max_length=120)
    description: Text = Field(default="", max_length=2000)
    purposes: list[Slug] = Field(default_factory=list, max_length=20)
    status: AgentStatus = AgentStatus.ACTIVE
    instructions: Annotated[Text, AfterValidator(check_template)] = Field(
        min_length=20, max_length=50_000
    )
    """May hold placeholders (`{{user_details.name}}`), filled at session start: agent_configs/templates.py."""
    greeting: Annotated[Text | None, AfterValidator(check_template)] = Field(
        default=None, max_length=2000
    )
    modalities: list[Modality] = Field(default_factory=lambda: [Modality.VOICE, Modality.TEXT])
    llm: LLMSpec
    stt: STTSpec | None = None
    tts: TTSSpec | None = None
    vad: VADSpec | None = None
    turn_schema: TurnSchema
    max_context_messages: int = Field(default=40, ge=2, le=1000)
    max_context_chars: int = Field(default=24_000, ge=1_000, le=2_000_000)
    """The brief's `contextWindowSize`, in characters of the conversation sent with each
    reply request (about 4 per token in English); the instructions are not counted."""
    max_user_message_chars: int = Field(default=4_000, ge=100, le=100_000)
    max_transcript_chars: int = Field(default=200_000, ge=1_000, le=1_000_000)
    """At most 4 MB of UTF-8 in the session record, far below MongoDB's 16 MB document cap."""
    idle_timeout_s: float = Field(default=300.0, ge=5.0, le=86_400.0)
    max_concurrent_sessions: int | None = Field(default=None, ge=1)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    summary: SummarySpec = Field(default_factory=SummarySpec)
    llm_unavailable: LLMUnavailableSpec = Field(default_factory=LLMUnavailableSpec)
    intents: list[IntentSpec] = Field(default_factory=list, max_length=20)
    tools: list[ToolSpec] = Field(default_factory=list, max_length=MAX_TOOLS)
    """What the agent can do besides talking (agent_configs/tools.py)."""
    tags: list[Slug] = Field(default_factory=list, max_length=50)
    release_gate: bool = False
    """True: a change to this type goes live only with a passing eval run of its suite on
    exactly the definition going live (a save, rollback or resume without one is filed as a
    candidate or refused; a routing change sending it more traffic is refused), unless an
    admin overrides it. The CURRENT version's value decides, so switching it off is gated too.
    README "Evals" > "Release gate"; admin_api/release_gate.py."""
    version: int = Field(default=0, ge=0)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("modalities")
    @classmethod
    def _modalities_unique(cls, modalities: list[Modality]) -> list[Modality]:
        if not modalities:
            raise ValueError("at least one modality (voice or text) is needed")
        if len(set(modalities)) != len(modalities):
            raise ValueError("modalities must be unique")
        return modalities

    @model_validator(mode="after")
    def _a_user_message_fits_the_limits(self) -> "AgentConfig":
        """The message being answered must fit the context and the transcript whole."""
        for name in ("max_context_chars", "max_transcript_chars"):
            if getattr(self, name) < self.max_user_message_chars:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) is less than max_user_message_chars "
                    f"({self.max_user_message_chars}): a user message would not fit"
                )
        return self

    @model_validator(mode="after")
    def _voice_needs_speech(self) -> "AgentConfig":
        if Modality.VOICE in self.modalities:
            missing = [name for name in ("stt", "tts") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"modality voice needs {' and '.join(missing)} to be set")
        return self

    def definition(self) -> dict[str, Any]:
        """The user-authored part: what a config file holds, without store bookkeeping."""
        return self.model_dump(mode="json", exclude={"version", "created_at", "updated_at"})


_TOOL_KINDS = frozenset(kind.value for kind in ToolKind)
_NO_TOOL_KIND = ("union_tag_invalid", "union_tag_not_found")


def error_field(error: Mapping[str, Any]) -> tuple[list[str], str]:
    """One pydantic error as (field path parts, message) in the config's own terms.

    The `tools` list is a union tagged by `kind`, and pydantic puts the tag into the location
    (`tools.0.http.parameters`): the field is `tools.0.parameters`. A tool whose kind is
    missing or unknown is its `kind` field's problem."""
    parts = [str(part) for part in error.get("loc", ())]
    path = [
        part
        for i, part in enumerate(parts)
        if not (
            i >= 2 and parts[i - 2] == "tools" and parts[i - 1].isdigit() and part in _TOOL_KINDS
        )
    ]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") in _NO_TOOL_KIND:
        path.append("kind")
        if error.get("type") == "union_tag_not_found":
            message = f"each tool needs a kind: one of {', '.join(sorted(_TOOL_KINDS))}"
    return path, message


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, `field.path: what is wrong`, for CLIs and logs."""
    lines = []
    for problem in error.errors(include_url=False):
        path, message = error_field(problem)
        lines.append(f"{'.'.join(path) or '(config)'}: {message}")
    return lines
