"""The judge: a model that says whether a turn meets its `rubric`, from the conversation so far.

Configured by the operator's environment (`EVALS_JUDGE_BASE_URL`, `EVALS_JUDGE_MODEL`,
`EVALS_JUDGE_API_KEY_ENV`: the NAME of the variable holding the key; see evals/chat.py for how
the request is bounded and checked). It is asked for a strict JSON verdict
`{"pass": bool, "reason": str}` and the rubric's outcome is `passed` or `failed` with its
reason as the detail.

- No judge configured: `skipped`, never `passed` (a skipped expectation counts for neither
  side of an attempt).
- A judge that errors (unreachable, refused by the egress policy, too slow, too large) or
  answers anything but the verdict: `failed`, with what went wrong. Not `skipped`: the operator
  asked for the rubric to be judged, and a run that passes while its judge is broken (a wrong
  key, a model that ignores JSON mode) would let a version through the release gate with its
  rubrics never checked. A failure says so in the run, and is fixed or retried.
"""

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from pydantic_settings import SettingsConfigDict

from evals.chat import ChatModel, ChatModelError, ChatModelSettings
from evals.expectations import NO_JUDGE, Outcome

MAX_TRANSCRIPT_CHARS = 16_000
"""The conversation the judge reads, its end kept: ~4k tokens, within any chat model's window."""

SYSTEM = (
    "You evaluate one reply of a customer-service agent. You are given a rubric and the "
    "conversation so far; judge only the agent's LAST reply against the rubric, using the "
    "earlier lines as context. Answer with one JSON object and nothing else: "
    '{"pass": true or false, "reason": "one short sentence saying why"}.'
)


class JudgeSettings(ChatModelSettings):
    model_config = SettingsConfigDict(env_prefix="EVALS_JUDGE_", env_file=".env", extra="ignore")


class Verdict(BaseModel):
    """Strict on its two keys (`"pass": "yes"` is not a verdict); other keys are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    passed: StrictBool = Field(alias="pass")
    reason: str = Field(min_length=1, max_length=2000)


@dataclass(frozen=True)
class Judge:
    model: ChatModel

    @classmethod
    def from_env(cls) -> "Judge | None":
        model = ChatModel.from_settings("judge", JudgeSettings())
        return cls(model) if model is not None else None

    async def verdict(self, rubric: str, transcript: list[dict[str, str]]) -> Outcome:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt(rubric, transcript)},
        ]
        try:
            answer = await self.model.complete(messages, temperature=0.0, json_object=True)
        except ChatModelError as exc:
            return Outcome("rubric", "failed", f"the judge could not judge it: {exc}")
        try:
            verdict = Verdict.model_validate(json.loads(answer))
        except (ValueError, ValidationError):
            shown = " ".join(answer.split())[:200]
            return Outcome(
                "rubric",
                "failed",
                'the judge did not answer the JSON verdict {"pass": bool, "reason": str}: '
                f"{shown!r}",
            )
        return Outcome("rubric", "passed" if verdict.passed else "failed", verdict.reason)


def prompt(rubric: str, transcript: list[dict[str, str]]) -> str:
    lines = "\n".join(f"{line['role']}: {line['text']}" for line in transcript)
    if len(lines) > MAX_TRANSCRIPT_CHARS:
        lines = "[earlier lines left out]\n" + lines[-MAX_TRANSCRIPT_CHARS:]
    return f"Rubric: {rubric}\n\nConversation:\n{lines}"


async def judge_rubric(
    judge: Judge | None, rubric: str, transcript: list[dict[str, str]]
) -> Outcome:
    """The rubric's outcome: judged, or skipped when no judge is configured."""
    if judge is None:
        return Outcome("rubric", "skipped", NO_JUDGE)
    return await judge.verdict(rubric, transcript)
