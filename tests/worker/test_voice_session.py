"""Voice end to end on the local stack: the client speaks (espeak-ng speech as a microphone
track), the agent hears it (silero VAD + Whisper tiny.en), answers (the scripted model) and
speaks back (espeak-ng), with transcriptions of both sides on `lk.transcription`.

The same session is traced: this module's worker and a dispatcher export to Jaeger (the
standard OTEL_* variables), and the session's trace is checked through Jaeger's query API and
the admin API's trace route."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from devstack.trace_backend import TraceBackend
from tests.admin_api.conftest import admin_settings, make_keys, running_app
from tests.dispatcher.conftest import (  # noqa: F401
    Start,
    add_subscription,
    encryption_key,
    new_secret,
    receiver,
    start_dispatcher,
    until,
)
from tests.dispatcher.receiver import Receiver
from tests.traces import SpanTree, trace_when
from tests.worker.conftest import (
    RunningWorker,
    agent_changed,
    launched_workers,
    wait_for_session_end,
)
from tests.worker.scripted_llm import ScriptedLLM
from worker.providers.local_tts import LocalTTS

KEY_WORDS = {"password", "reset", "email", "mail", "never", "arrived"}
AUDIBLE_RMS = 300.0  # int16 RMS; silence is 0, speech from espeak-ng is in the thousands


async def synthesize(text: str) -> tuple[bytes, int]:
    tts = LocalTTS(model="espeak-ng", voice="en-us", speed=0.9)
    frames = [event.frame async for event in tts.synthesize(text)]
    return b"".join(bytes(f.data) for f in frames), tts.sample_rate


def audible(rms: list[float]) -> int:
    return sum(1 for value in rms if value > AUDIBLE_RMS)


# Spans leave a process in batches every 5 s by default: 200 ms here, so the dispatcher's
# delivery spans are in Jaeger soon after the deliveries.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
STAGES = {"stage.transcript_final", "stage.llm", "stage.first_text", "stage.tts"}
STAGES |= {"stage.first_audio", "stage.fields"}


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    trace_backend: TraceBackend,
) -> Iterator[RunningWorker]:
    """The module's worker exports its traces to Jaeger."""
    traced = trace_backend.otel_env("switchboard-worker") | FAST_EXPORT
    with launched_workers(endpoints, worker_database.name, tmp_path_factory, extra_env=traced) as (
        running,
    ):
        yield running


@pytest.fixture
def database_name(worker_database: AsyncDatabase) -> str:
    """The dispatcher and the admin API work on the worker's database: one deployment."""
    return worker_database.name


async def test_a_spoken_question_gets_a_spoken_answer(
    client: RoomClient,
    worker: Any,
    worker_database: AsyncDatabase,
    scripted: ScriptedLLM,
    endpoints: Endpoints,
    trace_backend: TraceBackend,
    receiver: Receiver,
    start_dispatcher: Start,
) -> None:
    """The scripted model answers: hearing and speaking are judged, and a blank answer of the
    embedded model would be a failed turn with nothing to say. Its trace follows."""
    receiver.start()
    secret = new_secret()
    await add_subscription(worker_database, receiver.url("/hook"), secret=secret)
    receiver.secrets = {"/hook": [secret]}
    await start_dispatcher(**trace_backend.otel_env("switchboard-dispatcher"), **FAST_EXPORT)
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "support", "user_id": "u-voice"})
        assert await client.routed_agent() == ("support-agent-v1", "purpose")
        said_trace_id = client.agent_attributes().get("switchboard.trace_id")
        await client.next_transcript(0, timeout=90)  # greeting, spoken and transcribed
        await client.wait_for(
            lambda: audible(client.agent_audio_rms) > 20, 60, "the spoken greeting"
        )
        await client.wait_for(
            lambda: client.agent_attributes().get("lk.agent.state") == "listening",
            60,
            "the greeting to end",
        )

        speech, rate = await synthesize("Hello. My password reset email never arrived.")
        await client.speak(speech, rate)
        heard_before = len(client.agent_audio_rms)

        await client.wait_for(
            lambda: any(
                len(KEY_WORDS & set(t.lower().replace(".", " ").split())) >= 2
                for t in client.transcripts
            ),
            120,
            "Whisper's transcription of the question (two of its key words)",
        )
        await client.wait_for(
            lambda: audible(client.agent_audio_rms[heard_before:]) > 20, 180, "the spoken answer"
        )
        assert np.max(client.agent_audio_rms[heard_before:]) > AUDIBLE_RMS

        # the latency the user felt, from the end of their speech (worker/latency.py)
        turn = await client.next_turn(0)  # the spoken turn's fields
        latency = turn["latency_ms"]
        assert turn["latency_from"] in ("end_of_speech", "transcript")
        assert 0 <= latency["first_text"] <= latency["first_audio"]
        assert latency["first_text"] <= latency["fields"]

        # its waterfall: livekit's end-of-utterance, transcript, LLM and TTS marks beside ours
        waterfall = turn["waterfall"]
        by_stage = {s["stage"]: s for s in waterfall}
        spoken = {"transcript_final", "llm", "first_text", "tts", "first_audio"}
        if turn["latency_from"] == "end_of_speech":  # else the transcript is the origin
            spoken |= {"user_speech_end", "end_of_utterance"}
        assert spoken | {"fields"} <= set(by_stage), [s["stage"] for s in waterfall]
        assert [s["start_ms"] for s in waterfall] == sorted(s["start_ms"] for s in waterfall)
        assert all(by_stage[name]["source"] == "livekit" for name in spoken - {"first_text"})
        assert by_stage["tts"]["end_ms"] <= by_stage["first_audio"]["end_ms"]
        assert abs(by_stage["first_audio"]["end_ms"] - latency["first_audio"]) <= 1

        await client.leave()
    # what it cost: the question's audio heard, the greeting's and the answer's characters said
    record = await wait_for_session_end(worker_database, client.room_name)
    assert record["cost"]["stt_audio_s"] > 0 and record["cost"]["tts_characters"] > 0

    assert said_trace_id == record["trace_id"]  # the agent said which trace is its session's
    await the_session_is_one_trace(
        record, trace_backend, receiver, endpoints, worker_database, turn
    )


async def the_session_is_one_trace(
    record: dict[str, Any],
    trace_backend: TraceBackend,
    receiver: Receiver,
    endpoints: Endpoints,
    database: AsyncDatabase,
    turn: dict[str, Any],
) -> None:
    """Our session span roots the trace; routing, the turn with its waterfall stages and
    livekit's `agent_session` under it; the dispatcher's deliveries of the session's events in
    the same trace; nothing the user said or the agent answered in any attribute."""
    trace_id = record["trace_id"]

    def complete(found: dict[str, Any]) -> bool:
        names = {span["operationName"] for span in found["spans"]}
        delivered = [s for s in found["spans"] if s["operationName"] == "webhook.deliver"]
        return {"session", "turn", "agent_session"} <= names and len(delivered) >= 3

    ended = f"{record['session_id']}:ended"
    await until(lambda: ended in {r.webhook_id for r in receiver.all()}, "session.ended", 60)
    tree = SpanTree.of(await trace_when(trace_backend, trace_id, complete))
    print(tree.outline())  # shown when the test fails

    (root,) = tree.named("session")
    assert tree.parent(root) is None and tree.services[root["spanID"]] == "switchboard-worker"
    (routing,) = tree.named("routing")
    assert tree.parent(routing) is root
    assert {tree.parent_name(s) for s in tree.named("routing.strategy")} == {"routing"}
    assert tree.parent_name(tree.named("config.lookup")[0]) == "routing"

    spoken = [s for s in tree.named("turn") if tree.parent(s) is root]
    assert spoken, "the spoken turn is a turn span under the session"
    stages = {child["operationName"] for child in tree.children(spoken[-1])}
    assert stages >= STAGES, stages

    (agent_session,) = tree.named("agent_session")  # livekit-agents' own, under ours
    assert tree.parent(agent_session) is root
    livekit_below = [s for s in tree.spans.values() if "agent_session" in tree.ancestors(s)]
    assert {"llm_node", "tts_node"} & {s["operationName"] for s in livekit_below}, {
        s["operationName"] for s in livekit_below
    }

    deliveries = tree.named("webhook.deliver")
    assert {tree.services[s["spanID"]] for s in deliveries} == {"switchboard-dispatcher"}
    assert all(tree.ancestors(s)[-1:] == ["session"] for s in deliveries)
    carried = {(r.body.get("traceparent") or "--").split("-")[1] for r in receiver.all()}
    assert carried == {trace_id}, "each delivered CloudEvent carries the session's trace"

    attributes = tree.attributes()
    content_keys = [k for k in attributes if "pii" in k.split(".") or "messages" in k]
    assert content_keys == [], content_keys
    words = {w for v in attributes.values() for x in v if isinstance(x, str) for w in x.split()}
    said = set(str(turn["fields"].get("system_response", "")).split())
    assert not (KEY_WORDS | said) & {w.lower().strip(".,!?") for w in words}

    settings = admin_settings(
        endpoints, database.name, admin_trace_query_url=trace_backend.query_url
    )
    async with running_app(settings) as (_, api):
        keys = await make_keys(database)
        served = await api.get(
            f"/api/v1/sessions/{record['session_id']}/trace", headers=keys.header("viewer")
        )
    assert served.status_code == 200, served.text
    by_id = {s["span_id"]: s for s in served.json()["spans"]}
    assert by_id[root["spanID"]]["parent_span_id"] is None
    assert by_id[spoken[-1]["spanID"]]["parent_span_id"] == root["spanID"]
