"""Eval suites: what an agent type must do, as scenarios of user turns and expectations.

A suite belongs to one agent type (`agent_id`) and is stored in MongoDB (`eval_suites`, one
document per type, `_id` = the agent id); the built-in types ship theirs as YAML in
`agent_configs/defaults/suites/`. A scenario starts a real room with `metadata` (so routing is
tested as well), then plays each turn and checks the turn's `expect`: a scripted `user` line,
or a simulated caller (`simulate`: a persona with a goal, played by a model for some turns).
A `voice` scenario speaks the user's lines into the room as a microphone (README "Evals").

Every process may read these models (the runner in `evals/`, later the admin API and the
console's gate); like the agent types, unknown keys are refused, so a typo such as
`reply_contain` is an error naming the field, never an expectation silently left out.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent_configs.models import Slug, Text, describe_validation_error, repeated

EVAL_SUITES = "eval_suites"
EVAL_RUNS = "eval_runs"
SUITES_DIR = Path(__file__).parent / "defaults" / "suites"
"""A folder of its own, not `<type>.suite.yaml` beside the types: the seeder reads every
`*.yaml` of `defaults/` as an agent type and would refuse a suite file as a broken one."""
MAX_REPEAT = 50
MAX_TURNS = 50
MAX_SIMULATED_TURNS = 20

Phrase = Annotated[Text, Field(min_length=1, max_length=500)]


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return pattern


Regex = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_regex)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldCheck(_Model):
    """What one turn-schema field must hold. Several checks may be combined (all must pass)."""

    present: bool | None = None
    """True: the field has a value (not missing, not null); False: it has none."""
    equals: Any = None
    one_of: list[Any] | None = Field(default=None, min_length=1)
    min: float | None = None
    max: float | None = None
    matches: Regex | None = None
    """A regular expression searched in the value (a string)."""

    @model_validator(mode="after")
    def _says_something(self) -> "FieldCheck":
        if not self.model_fields_set:
            raise ValueError("name at least one check: present, equals, one_of, min, max, matches")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ToolCallCheck(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Each key given must be among the call's arguments with this value (others may exist)."""


class SessionEnded(_Model):
    """After the turn the session ends (the agent's end_session tool, an escalation that ends
    it...); `reason` null: any reason, else the session record's `end_reason` must be it."""

    reason: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class TurnExpect(_Model):
    """What one turn must show. Reply checks are case-insensitive."""

    agent: Slug | None = None
    """The agent type that answered the turn (after routing and any hand-off)."""
    fields: dict[str, FieldCheck] = Field(default_factory=dict)
    reply_contains: list[Phrase] = Field(default_factory=list)
    reply_not_contains: list[Phrase] = Field(default_factory=list)
    reply_matches: Regex | None = None
    reply_not_empty: bool = False
    tool_called: list[ToolCallCheck] = Field(default_factory=list)
    handoff_to: Slug | None = None
    first_text_under_ms: int | None = Field(default=None, ge=1)
    """The turn's `latency_ms.first_text` must be below this budget."""
    rubric: Annotated[Text, Field(min_length=1, max_length=2000)] | None = None
    """Judged by a judge model; with none configured it is reported `skipped`, never passed."""
    session_ended: SessionEnded | None = None
    """Checked after the turn (after a simulated caller's last line): only a scenario's last
    turn may expect it."""


class GreetingExpect(_Model):
    """What the greeting (the agent's first words, before any user turn) must say."""

    reply_contains: list[Phrase] = Field(default_factory=list)
    reply_not_contains: list[Phrase] = Field(default_factory=list)
    reply_matches: Regex | None = None


class Simulation(_Model):
    """A simulated caller: a model plays `persona` towards `goal`, one line a turn, for at most
    `turns` turns (fewer when it says it is done)."""

    persona: Annotated[Text, Field(min_length=1, max_length=2000)]
    goal: Annotated[Text, Field(min_length=1, max_length=2000)]
    turns: int = Field(ge=1, le=MAX_SIMULATED_TURNS)


class ScenarioTurn(_Model):
    """Either `user` (a scripted line) or `simulate` (a simulated caller, whose every line is
    checked against `expect`)."""

    user: Annotated[Text, Field(min_length=1, max_length=2000)] | None = None
    simulate: Simulation | None = None
    expect: TurnExpect = Field(default_factory=TurnExpect)

    @model_validator(mode="after")
    def _user_or_simulate(self) -> "ScenarioTurn":
        if (self.user is None) == (self.simulate is None):
            given = "both" if self.user is not None else "neither"
            raise ValueError(
                "a turn has either `user` (a scripted line) or `simulate` (a simulated caller: "
                f"persona, goal, turns), exactly one; this one has {given}"
            )
        return self


class Scenario(_Model):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[Text, Field(max_length=2000)] | None = None
    modality: Literal["text", "voice"] = "text"
    """`voice`: each user line is spoken (espeak-ng) into the room as the microphone and heard
    through the agent's own speech-to-text; what it heard is the turn's user line."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The room's metadata, as a frontend sends it (`purpose`, `agent_id`, `user_id`...)."""
    routed_to: Slug | None = None
    """The agent type routing chose at the start (the agent's `switchboard.agent_id`)."""
    greeting: GreetingExpect | None = None
    turns: list[ScenarioTurn] = Field(min_length=1, max_length=MAX_TURNS)
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)
    """Runs of the scenario: models are not deterministic, so a pass rate, not one answer."""
    required_pass_rate: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _coherent(self) -> "Scenario":
        ending = [i for i, t in enumerate(self.turns) if t.expect.session_ended is not None]
        if ending and ending[0] != len(self.turns) - 1:
            raise ValueError(
                f"turns.{ending[0]}.expect.session_ended: only the last turn may expect the "
                "session to end (no one would answer the turns after it)"
            )
        if self.modality == "voice" and self.metadata.get("modality") == "text":
            raise ValueError(
                "metadata.modality: 'text' asks the worker for a chat-only session, which would "
                "not hear a voice scenario: leave it out or set 'voice'"
            )
        return self


class Suite(_Model):
    agent_id: Slug
    description: Annotated[Text, Field(max_length=2000)] | None = None
    scenarios: list[Scenario] = Field(min_length=1, max_length=100)

    @field_validator("scenarios")
    @classmethod
    def _unique_names(cls, scenarios: list[Scenario]) -> list[Scenario]:
        twice = repeated([s.name for s in scenarios])
        if twice:
            raise ValueError(f"scenario names must be unique: {', '.join(twice)} listed twice")
        return scenarios

    def document(self) -> dict[str, Any]:
        """The stored form (`eval_suites`): keyed by the agent id, one suite per type. What
        the suite did not set is left out, but an explicit null stays (`equals: null`)."""
        return {"_id": self.agent_id, **self.model_dump(mode="json", exclude_unset=True)}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Suite":
        return cls.model_validate({k: v for k, v in document.items() if k != "_id"})


class SuiteFileError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(f"{path.name}: " + "; ".join(problems))


def load_suite_file(path: Path) -> Suite:
    """Raises SuiteFileError naming each bad field (`scenarios.0.turns.1.expect.fields...`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SuiteFileError(path, [f"cannot read: {exc}".replace("\n", " ")]) from exc
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteFileError(path, describe_validation_error(exc)) from exc


def load_suite_dir(directory: Path = SUITES_DIR) -> tuple[list[Suite], list[SuiteFileError]]:
    suites: list[Suite] = []
    errors: list[SuiteFileError] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            suites.append(load_suite_file(path))
        except SuiteFileError as exc:
            errors.append(exc)
    return suites, errors
