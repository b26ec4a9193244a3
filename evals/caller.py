"""The simulated caller: a model plays a scenario turn's `simulate.persona` towards its `goal`,
one line a turn, for at most `simulate.turns` turns.

Configured like the judge (evals/chat.py) by `EVALS_CALLER_BASE_URL`, `EVALS_CALLER_MODEL`,
`EVALS_CALLER_API_KEY_ENV`. With no `EVALS_CALLER_BASE_URL` the caller is the stack's own local
model, `LOCAL_LLM_URL` (and `LOCAL_LLM_MODEL`), which `make dev` starts and hands its processes:
a caller needs no judgement a tiny model lacks to exercise the path (routing, the turns, the
fields), and a suite with `simulate` then runs on a bare dev stack. If that endpoint is not
running, the turn fails naming the variables to set.

The caller ends the conversation early by saying DONE_MARKER (anywhere in its line, any case):
what it said before the marker is still its last line; a line that is only the marker says
nothing more. A first line that is empty or only the marker fails the turn (nothing was tested).
"""

from dataclasses import dataclass

from pydantic_settings import SettingsConfigDict

from agent_configs.evals import Simulation
from agent_configs.settings import Settings
from evals.chat import ChatModel, ChatModelError, ChatModelSettings

DONE_MARKER = "[done]"
MAX_LINE_CHARS = 2000
"""A scripted `user` line's bound too."""
MAX_TRANSCRIPT_LINES = 60
OPENING = "(The call has started. Say your first line.)"


class CallerSettings(ChatModelSettings):
    model_config = SettingsConfigDict(env_prefix="EVALS_CALLER_", env_file=".env", extra="ignore")


class CallerError(Exception):
    """The simulated caller gave no line (its model failed or said nothing)."""


@dataclass(frozen=True)
class CallerLine:
    text: str
    """Empty only when `done` (the caller had nothing more to say)."""
    done: bool


def system_prompt(simulation: Simulation) -> str:
    return (
        "You are role-playing a person calling a company's customer-service agent; the other "
        "side of this chat is that agent. Stay in character.\n"
        f"Who you are: {simulation.persona}\n"
        f"What you want from this call: {simulation.goal}\n"
        "Each time, write only your next line to the agent: one or two short sentences, as "
        "you would say them, without your name, quotes or stage directions. When your goal is "
        f"reached or there is nothing left to say, answer {DONE_MARKER} alone."
    )


@dataclass(frozen=True)
class SimulatedCaller:
    model: ChatModel

    @classmethod
    def from_env(cls) -> "SimulatedCaller":
        settings = CallerSettings()
        model = ChatModel.from_settings("caller", settings)
        if model is None:  # the stack's local model (module docstring)
            stack = Settings()
            model = ChatModel.from_settings(
                "caller",
                settings.model_copy(
                    update={
                        "base_url": stack.local_llm_url,
                        "model": settings.model or stack.local_llm_model or "local",
                    }
                ),
            )
        assert model is not None
        return cls(model)

    async def next_line(
        self, simulation: Simulation, transcript: list[dict[str, str]], *, first: bool
    ) -> CallerLine:
        """The caller's next line, given the conversation so far (the agent's lines are the
        other side's: `user` messages to the caller's model)."""
        messages = [{"role": "system", "content": system_prompt(simulation)}]
        for said in transcript[-MAX_TRANSCRIPT_LINES:]:
            role = "assistant" if said["role"] == "user" else "user"
            messages.append({"role": role, "content": said["text"] or "(silence)"})
        if messages[-1]["role"] != "user":
            messages.append({"role": "user", "content": OPENING})
        try:
            answer = await self.model.complete(messages, temperature=0.7)
        except ChatModelError as exc:
            raise CallerError(
                f"{exc} (set EVALS_CALLER_BASE_URL and EVALS_CALLER_MODEL, or run the stack's "
                "local model: LOCAL_LLM_URL)"
            ) from None
        line = spoken_line(answer)
        if first and not line.text:
            raise CallerError(
                "the simulated caller said nothing to start with"
                + (" (it said it was done)" if line.done else "")
                + f": {' '.join(answer.split())[:200]!r}"
            )
        return line


def spoken_line(answer: str) -> CallerLine:
    """The first line of the model's answer, without the marker, quotes or a speaker's label."""
    done = DONE_MARKER in answer.lower()
    text = next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    cut = text.lower().find(DONE_MARKER)
    if cut >= 0:
        text = text[:cut].strip()
    for label in ("caller:", "user:", "customer:", "me:"):
        if text.lower().startswith(label):
            text = text[len(label) :].strip()
    text = text.strip().strip('"“”').strip()
    return CallerLine(text[:MAX_LINE_CHARS], done or not text)
