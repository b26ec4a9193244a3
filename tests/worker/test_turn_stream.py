"""The reply and its fields from one constrained call: what the user reads is the reply's
string (never the JSON around it), the fields validate against the agent type's schema, and a
broken stream falls back."""

import asyncio
import json
from typing import Any

import jsonschema
from livekit.agents import AgentSession, RunResult, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from agent_configs.files import DEFAULTS_DIR, load_config_file
from agent_configs.models import AgentConfig, TurnFill
from devstack import Endpoints
from devstack.services import reserve_port
from tests.worker.scripted_llm import ScriptedLLM as ScriptedEndpoint
from worker.providers.registry import ChatEndpoint
from worker.session import ConfiguredAgent, build_models
from worker.settings import WorkerSettings
from worker.turn_stream import ReplyExtractor, StreamedReply
from worker.turns import Message, StreamedTurn, StructuredCaller, TurnFiller


def support() -> AgentConfig:
    config = load_config_file(DEFAULTS_DIR / "support.yaml")
    assert isinstance(config, AgentConfig)
    return config.model_copy(update={"modalities": ["text"]})


def streamed_in_pieces(document: dict[str, object], size: int) -> tuple[str, ReplyExtractor]:
    raw = json.dumps(document)
    extractor = ReplyExtractor()
    heard = "".join(extractor.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    return heard, extractor


def test_the_reply_streams_out_of_the_json_and_the_fields_follow() -> None:
    reply = 'Sure: type "reset" and press Enter.\nThen tell me what you see – ok?'
    document = {"system_response": reply, "sentiment": "neutral", "issue_resolved": False}
    for size in (1, 2, 3, 7, 1000):  # escapes and multi-byte characters split across chunks
        heard, extractor = streamed_in_pieces(document, size)
        assert heard == reply
        turn = extractor.finish()
        assert turn.reply == reply
        assert turn.fields == {"sentiment": "neutral", "issue_resolved": False}
        assert turn.error is None


def test_a_cut_off_reply_keeps_what_was_said_and_has_no_fields() -> None:
    raw = json.dumps({"system_response": "Let me check your account.", "sentiment": "neutral"})
    extractor = ReplyExtractor()
    heard = extractor.feed(raw[:40])
    turn = extractor.finish()
    assert heard == turn.reply == "Let me check your account."[: len(heard)] and heard
    assert turn.fields is None
    assert "incomplete" in (turn.error or "")


def test_an_endpoint_that_ignores_the_json_schema_still_gets_its_words_through() -> None:
    extractor = ReplyExtractor()
    heard = "".join(extractor.feed(piece) for piece in ["  Sure", ", I can ", "help with that."])
    assert heard == "  Sure, I can help with that."
    turn = extractor.finish()
    assert turn.fields is None and "plain text" in (turn.error or "")


class ScriptedLLM(llm.LLM):
    """Streams a fixed JSON text in small pieces; `hold` keeps it from finishing until set."""

    def __init__(self, text: str, hold: asyncio.Event) -> None:
        super().__init__()
        self.text = text
        self.hold = hold
        self.cancelled = False

    def chat(self, *, chat_ctx: llm.ChatContext, tools: Any = None, **_: Any) -> llm.LLMStream:
        return ScriptedStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=DEFAULT_API_CONNECT_OPTIONS
        )


class ScriptedStream(llm.LLMStream):
    async def _run(self) -> None:
        scripted = self._llm
        assert isinstance(scripted, ScriptedLLM)
        try:
            for i in range(0, len(scripted.text), 4):
                if i > len(scripted.text) // 2:
                    await scripted.hold.wait()
                piece = scripted.text[i : i + 4]
                self._event_ch.send_nowait(
                    llm.ChatChunk(id="x", delta=llm.ChoiceDelta(role="assistant", content=piece))
                )
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            scripted.cancelled = True
            raise


async def test_the_turn_ends_for_the_user_before_the_fields_are_written() -> None:
    fields = {"sentiment": "neutral", "next_step": "x" * 200}
    hold = asyncio.Event()
    model = ScriptedLLM(json.dumps({"system_response": "Hello there.", **fields}), hold)
    reply = StreamedReply(model.chat(chat_ctx=llm.ChatContext.empty()))
    heard = [words async for words in reply.words()]  # returns although the stream is held
    assert all(isinstance(words, str) for words in heard), heard
    assert "".join(str(words) for words in heard) == "Hello there."
    assert not reply.turn.done()
    hold.set()
    turn = await asyncio.wait_for(reply.turn, 5)
    assert (turn.reply, turn.fields, turn.error) == ("Hello there.", fields, None)


async def test_an_interrupted_reply_stops_the_call_and_keeps_what_was_said() -> None:
    model = ScriptedLLM(
        json.dumps({"system_response": "A long answer " * 20, "sentiment": "neutral"}),
        asyncio.Event(),
    )
    reply = StreamedReply(model.chat(chat_ctx=llm.ChatContext.empty()))
    words = reply.words()
    first = await anext(words)
    assert isinstance(first, str)
    await words.aclose()  # what the session does when the user interrupts
    turn = await asyncio.wait_for(reply.turn, 5)
    assert model.cancelled
    assert turn.reply.startswith(first) and turn.fields is None


async def test_valid_streamed_fields_need_no_extraction_call() -> None:
    dead = f"http://127.0.0.1:{reserve_port(0, 'dead', 'UNUSED')}/v1"
    caller = StructuredCaller([ChatEndpoint("local", "m", dead, "local", 0.0, 100, None)])
    schema = support().turn_schema
    streamed = {
        "issue_category": "account",
        "sentiment": "frustrated",
        "issue_resolved": False,
        "escalation_needed": False,
        "urgency": "medium",
        "follow_up_action": None,
    }
    history = [Message("user", "I cannot log in.")]
    said = "Let us reset it."
    filled = await TurnFiller(caller, schema, "Support").fill(
        history, said, StreamedTurn(said, streamed)
    )
    assert (filled.status, filled.attempts) == ("ok", 1), filled.error
    assert filled.fields["system_response"] == said
    assert caller.usage.prompt_tokens == 0

    broken = streamed | {"sentiment": "ecstatic!!"}
    filled = await TurnFiller(caller, schema, "Support").fill(
        history, said, StreamedTurn(said, broken)
    )
    assert (filled.status, filled.attempts) == ("failed", 2)  # the one retry was the (dead) call
    assert "Connection" in (filled.error or "")


async def one_turn(llm_url: str) -> tuple[AgentConfig, str, StreamedTurn]:
    """The support type's answer to one message through a real AgentSession: what the user
    got (the assistant message) and the turn the constrained call produced."""
    config = support()
    assert config.turn_schema.fill == TurnFill.WITH_REPLY
    settings = WorkerSettings(local_llm_url=llm_url)
    agent = ConfiguredAgent(config, await build_models(config, settings, None), [])
    async with AgentSession() as session:
        await session.start(agent)
        result: RunResult[None] = await session.run(
            user_input="My login stopped working this morning."
        )
        assert agent.streamed_turn is not None
        turn = await asyncio.wait_for(agent.streamed_turn, 60)
    said = result.expect.next_event().is_message(role="assistant").event().item.text_content or ""
    return config, said, turn


def assert_the_user_got_the_reply_field(config: AgentConfig, said: str, turn: StreamedTurn) -> None:
    """What the product guarantees, whatever the words: the model wrote the JSON document
    (no plain-text fallback), the user got its `system_response` string and nothing of the
    JSON around it, and the other fields fit the agent type's schema."""
    assert turn.error is None and turn.fields is not None, turn
    assert said == turn.reply, (said, turn)
    jsonschema.validate({**turn.fields, "system_response": said}, config.turn_schema.json_schema())


async def test_a_reply_that_looks_like_json_or_a_template_reaches_the_user_as_it_is(
    scripted: ScriptedEndpoint,
) -> None:
    """The embedded model once answered the literal `{message}`: words like any other."""
    for reply in ("{message}", '{"system_response": "x"}', "  Sure.\n"):
        scripted.reply = reply
        config, said, turn = await one_turn(scripted.url)
        assert said == reply
        assert_the_user_got_the_reply_field(config, said, turn)


async def test_a_real_reply_is_the_reply_field_and_its_fields_fit_the_schema(
    endpoints: Endpoints,
) -> None:
    """The embedded model, grammar-constrained: its words are not judged, only their shape."""
    assert endpoints.local_llm_url
    assert_the_user_got_the_reply_field(*await one_turn(endpoints.local_llm_url))
