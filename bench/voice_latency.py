"""Voice: the end of the user's speech -> the agent's first audio, Switchboard (the seeded
support type as shipped: voice, its turn fields) against a bare livekit-agents worker
(bench/bare_worker.py with `BARE_VOICE=1`), with the same local STT (faster-whisper tiny.en),
TTS (espeak-ng) and silero VAD on both sides.

    .venv/bin/python -m bench.voice_latency [--sessions 12] [--turns 2] [--llm simulated]

One run starts the devstack and both workers on the same LiveKit server (bench/harness.py,
`BenchStack(voice=True)`). The model is the simulated endpoint (bench/simulated_llm.py; 300 ms
to the first token, 50 tokens/s) unless `--llm local` asks for the embedded CPU model. Sessions
run one at a time, interleaved, the order alternating each round, with the bench waiting
between two sessions until neither worker has a job and the model is idle.

Each session: the client joins (metadata `{"purpose": "support", ...}`), waits for the spoken
greeting to end (the agent's `lk.agent.state` back to `listening`), then asks `--turns`
spoken questions, each after the previous answer has ended. The question is espeak-ng speech
synthesized once by the project's LocalTTS (as tests/worker/test_voice_session.py does),
published as a microphone track in real time, followed by silence for as long as the turn
lasts (a microphone never stops sending).

- The clock starts at the end of the user's speech: when the last frame of the question
  leaves the client's audio queue (the time it was captured plus what was still queued
  ahead of it, `AudioSource.queued_duration`).
- It stops at the first agent audio frame the client receives after that whose RMS is over
  `AUDIBLE_RMS` (decoded silence and comfort noise are far below it).

Breakdown, same clock for both: when the client saw the user's transcript on
`lk.transcription` (VAD end of turn + Whisper) and the reply's first text. From the workers:
Switchboard's own turn latency (`agent-turn`: first text and first audio from livekit's end of
speech), and the bare worker's livekit metrics (`bare: metrics` log lines: end-of-turn delay,
transcription delay, LLM time to first token, TTS time to first byte, e2e latency).

Target: Switchboard p50 and p95 <= 1.05x bare. Writes bench/results/voice_latency-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import rtc

from bench.harness import (
    SAME_WORK_AGENT,
    SUPPORT_AGENT,
    BenchStack,
    LoadWatch,
    TimedClient,
    Transcript,
    WorkerProcess,
    fmt,
    machine_info,
    print_table,
    ratio,
    summary,
    write_results,
)

SAME_WORK = "same-llm-work"
PHASES: dict[str, tuple[str, str | None]] = {
    "switchboard": ("switchboard", SUPPORT_AGENT),
    SAME_WORK: ("switchboard", SAME_WORK_AGENT),
    "bare": ("bare", None),
}
"""phase -> (worker, the agent type Switchboard must say it is). `switchboard`: the support
type as shipped, its turn fields written in the reply's JSON; `same-llm-work`: its copy with
no fields and no summary (bench/harness.py), which asks the model what the bare worker asks."""
QUESTIONS = (
    "Hello. My password reset email never arrived.",
    "I still cannot log in to my account.",
    "Can you send the email again please?",
)
"""What the user says, in turn; words Whisper tiny.en gets right from espeak-ng's voice."""
AUDIBLE_RMS = 300.0
"""int16 RMS of a 10 ms frame: decoded silence is ~0, espeak-ng speech in the thousands
(tests/worker/test_voice_session.py uses the same threshold)."""
FRAME_MS = 10
MIC_QUEUE_MS = 100
"""The client's audio queue: small, so the end of speech is at most this far from capture."""
GREETING_TIMEOUT_S = 90.0
ANSWER_TIMEOUT_S = 60.0


class Microphone:
    """A microphone track that always sends: speech when asked to say something, silence
    otherwise, in 10 ms frames paced by livekit's audio queue."""

    def __init__(self, room: rtc.Room, sample_rate: int) -> None:
        self.room = room
        self.rate = sample_rate
        self.source = rtc.AudioSource(sample_rate, 1, queue_size_ms=MIC_QUEUE_MS)
        self._speech: asyncio.Queue[tuple[np.ndarray, asyncio.Future[float]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._task = asyncio.create_task(self._run())

    async def say(self, pcm: np.ndarray) -> float:
        """Speak `pcm`; returns when its last sample left the queue (time.time())."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._speech.put((pcm, done))
        return await done

    async def _run(self) -> None:
        size = self.rate * FRAME_MS // 1000
        silence = np.zeros(size, dtype=np.int16)
        while True:
            if self._speech.empty():
                await self._capture(silence)
                continue
            pcm, done = self._speech.get_nowait()
            for start in range(0, pcm.size, size):
                await self._capture(pcm[start : start + size])
            # The last speech sample leaves the queue once what is queued ahead of it has.
            end = time.time() + self.source.queued_duration
            loop = asyncio.get_running_loop()
            loop.call_later(max(0.0, end - time.time()), _resolve, done, end)

    async def _capture(self, samples: np.ndarray) -> None:
        frame = rtc.AudioFrame(samples.tobytes(), self.rate, 1, samples.size)
        await self.source.capture_frame(frame)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _resolve(future: asyncio.Future[float], value: float) -> None:
    if not future.done():
        future.set_result(value)


class VoiceClient(TimedClient):
    """TimedClient plus the agent's audio (arrival time and RMS of every frame), who sent each
    text stream, and the `agent-turn` data Switchboard publishes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio: list[tuple[float, float]] = []  # (time.time() of arrival, RMS)
        self.texts: list[tuple[float, str, str]] = []  # (opened at, sender identity, text)
        self.turns: list[dict[str, Any]] = []
        self.states: list[tuple[float, str]] = []  # (time.time(), the agent's lk.agent.state)
        self._readers: set[asyncio.Task[None]] = set()
        self.microphone: Microphone | None = None

    async def join(self, timeout_s: float = 30.0) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("data_received", self._on_data)
        self.room.on("participant_attributes_changed", self._on_attributes)
        await super().join(timeout_s)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if "lk.agent.state" in changed and participant.identity != self.identity:
            self.states.append((time.time(), changed["lk.agent.state"]))

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        opened = time.time()
        self.texts.append((opened, identity, ""))
        index = len(self.texts) - 1

        async def read() -> None:
            try:
                text = await reader.read_all()
            except rtc.StreamError:
                return
            self.texts[index] = (opened, identity, text)
            if identity != self.identity:
                self.transcripts.append(Transcript(opened, time.time(), text))
            self._changed.set()

        self._spawn(read())

    def _on_track(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track):
            samples = np.frombuffer(bytes(event.frame.data), dtype=np.int16).astype(np.float32)
            rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
            self.audio.append((time.time(), rms))
            if rms > AUDIBLE_RMS:
                self._changed.set()

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic == "agent-turn":
            try:
                self.turns.append(json.loads(packet.data))
            except ValueError:
                return
            self._changed.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    def agent_state(self) -> str | None:
        for participant in self.room.remote_participants.values():
            if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return participant.attributes.get("lk.agent.state")
        return None

    def first_audible_after(self, after: float) -> float | None:
        return next((at for at, rms in self.audio if at > after and rms > AUDIBLE_RMS), None)

    def first_state_after(self, after: float, state: str) -> float | None:
        return next((at for at, name in self.states if at > after and name == state), None)

    def first_text_after(self, after: float, from_user: bool) -> float | None:
        return next(
            (
                opened
                for opened, identity, _ in self.texts
                if opened > after and (identity == self.identity) == from_user
            ),
            None,
        )

    async def until(self, condition: Any, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (result := condition()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what}: not in {timeout_s:.0f}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
            except TimeoutError:
                pass
        return result

    async def leave(self) -> None:
        if self.microphone is not None:
            await self.microphone.stop()
        await super().leave()
        for task in list(self._readers):
            task.cancel()


async def speech_samples(text: str, rate: int) -> np.ndarray:
    """espeak-ng (the project's LocalTTS, as the voice tests speak) resampled to `rate`."""
    from worker.providers.local_tts import LocalTTS

    tts = LocalTTS(model="espeak-ng", voice="en-us", speed=0.9)
    frames = [event.frame async for event in tts.synthesize(text)]
    resampler = rtc.AudioResampler(
        tts.sample_rate, rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    out = [f for frame in frames for f in resampler.push(frame)] + resampler.flush()
    return np.concatenate([np.frombuffer(bytes(f.data), dtype=np.int16) for f in out])


async def one_session(
    stack: BenchStack,
    phase: str,
    index: int,
    questions: list[np.ndarray],
    rate: int,
) -> dict[str, Any]:
    worker, agent_id = PHASES[phase]
    metadata: dict[str, Any] = {
        "purpose": "support",
        "user_id": f"bench-voice-{phase}-{index}",
        "user_details": {"tier": "free"},
    }
    if agent_id == SAME_WORK_AGENT:
        metadata["agent_id"] = SAME_WORK_AGENT
    assert stack.endpoints
    client = VoiceClient(stack.endpoints, stack.workers[worker].agent_name, metadata, "bench-user")
    sample: dict[str, Any] = {"phase": phase, "index": index, "room": client.room_name, "turns": []}
    try:
        await client.join()
        if agent_id is not None:  # a phase served by another type measures nothing
            served = await client.served_by(GREETING_TIMEOUT_S)
            if served != agent_id:
                raise RuntimeError(f"served by {served}, not {agent_id}")
        await client.until(lambda: client.transcripts, GREETING_TIMEOUT_S, "the greeting text")
        await client.until(
            lambda: client.first_audible_after(0.0), GREETING_TIMEOUT_S, "the greeting's audio"
        )
        await client.until(
            lambda: client.agent_state() == "listening",
            GREETING_TIMEOUT_S,
            "the end of the greeting",
        )
        client.microphone = Microphone(client.room, rate)
        await client.microphone.start()
        for turn, pcm in enumerate(questions):
            spoke_at = time.time()
            end = await client.microphone.say(pcm)
            heard = await client.until(
                lambda end=end: client.first_audible_after(end),
                ANSWER_TIMEOUT_S,
                f"the answer to question {turn + 1}",
            )
            await client.until(
                lambda: (
                    client.agent_state() == "listening"
                    and client.first_audible_after(time.time() - 0.3) is None
                ),
                ANSWER_TIMEOUT_S,
                f"the end of answer {turn + 1}",
            )
            # read once the answer is over: its text follows its audio (livekit syncs them)
            user_text = client.first_text_after(spoke_at, from_user=True)
            agent_text = client.first_text_after(end, from_user=False)
            thinking = client.first_state_after(spoke_at, "thinking")
            sample["turns"].append(
                {
                    "turn": turn,
                    "speech_s": pcm.size / rate,
                    "end_of_speech_at": end,
                    "first_audio_s": heard - end,
                    "user_transcript_s": (user_text - end) if user_text else None,
                    "thinking_s": (thinking - end) if thinking else None,
                    "thinking_to_audio_s": (heard - thinking) if thinking else None,
                    "reply_text_s": (agent_text - end) if agent_text else None,
                }
            )
        sample["texts"] = [
            {"at": opened, "from": identity, "text": text[:80]}
            for opened, identity, text in client.texts
        ]
        sample["agent_turns"] = [
            {"latency_ms": t.get("latency_ms"), "latency_from": t.get("latency_from")}
            for t in client.turns
        ]
        sample["ok"] = True
    except Exception as exc:
        sample["ok"] = False
        sample["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await client.leave()
    return sample


def bare_metrics(worker: WorkerProcess) -> dict[str, list[dict[str, Any]]]:
    """room -> the livekit metrics of each message, in order (`bare: metrics` lines)."""
    rooms: dict[str, list[dict[str, Any]]] = {}
    for event in worker.log_events():
        if event.get("message") == "bare: metrics" and event.get("bench_room"):
            rooms.setdefault(event["bench_room"], []).append(
                {"role": event.get("role"), **(event.get("metrics") or {})}
            )
    return rooms


async def run_sessions(
    stack: BenchStack, phases: list[str], sessions: int, turns: int, settle_s: float
) -> list[dict[str, Any]]:
    rate = 48_000
    questions = [await speech_samples(QUESTIONS[i % len(QUESTIONS)], rate) for i in range(turns)]
    for phase in phases:  # warm-up: the first job of each worker and type, not counted
        warm = await one_session(stack, phase, -1, questions[:1], rate)
        print(f"  warm-up {phase:<14} {'ok' if warm['ok'] else warm.get('error')}", flush=True)
        await asyncio.to_thread(stack.wait_quiet, 60.0, settle_s)
    samples = []
    for index in range(sessions):
        shift = index % len(phases)  # each phase goes first, second, ... in turn
        for phase in phases[shift:] + phases[:shift]:
            sample = await one_session(stack, phase, index, questions, rate)
            samples.append(sample)
            await asyncio.to_thread(stack.wait_quiet, 60.0, settle_s)
            state = (
                " ".join(f"{t['first_audio_s'] * 1000:6.0f}" for t in sample["turns"]) + " ms"
                if sample["ok"]
                else f"FAILED {sample.get('error')}"
            )
            print(f"  [{index + 1:2d}/{sessions}] {phase:<14} {state}", flush=True)
    return samples


def _ms(values: list[float | None]) -> dict[str, Any]:
    return summary([v * 1000 for v in values if v is not None])


def report(samples: list[dict[str, Any]], stack: BenchStack, phases: list[str]) -> dict[str, Any]:
    turns = {
        phase: [t for s in samples if s["phase"] == phase and s["ok"] for t in s["turns"]]
        for phase in phases
    }
    measures = {
        "end of speech -> first agent audio": "first_audio_s",
        "end of speech -> user transcript at the client": "user_transcript_s",
        "end of speech -> agent state 'thinking' (end of turn)": "thinking_s",
        "agent state 'thinking' -> first agent audio": "thinking_to_audio_s",
        "end of speech -> reply's first text at the client": "reply_text_s",
    }
    ours = [phase for phase in phases if phase != "bare"]
    header = ["measure", "bare p50", "bare p95"]
    for phase in ours:
        header += [f"{phase} p50", "p95", "ratio p50", "ratio p95"]
    rows: list[list[str]] = []
    headline: dict[str, dict[str, Any]] = {}
    for label, key in measures.items():
        stats = {phase: _ms([t.get(key) for t in turns[phase]]) for phase in phases}
        row = [label, fmt(stats["bare"]["p50"], digits=0), fmt(stats["bare"]["p95"], digits=0)]
        headline[label] = {"ms": stats}
        for phase in ours:
            r50 = ratio(stats[phase]["p50"], stats["bare"]["p50"])
            r95 = ratio(stats[phase]["p95"], stats["bare"]["p95"])
            headline[label][phase] = {"ratio_p50": r50, "ratio_p95": r95}
            row += [
                fmt(stats[phase]["p50"], digits=0),
                fmt(stats[phase]["p95"], digits=0),
                fmt(r50, "x", 2),
                fmt(r95, "x", 2),
            ]
        rows.append(row)
    counts = ", ".join(f"{phase} {len(turns[phase])}" for phase in phases)
    print_table(f"voice latency, ms on the client's clock (turns: {counts})", header, rows)

    # worker side: Switchboard's own turn latency (agent-turn), the bare worker's livekit metrics
    worker_rows = []
    marks: dict[str, dict[str, list[float]]] = {}
    for phase in ours:
        for s in samples:
            if s["phase"] == phase and s["ok"]:
                for t in s.get("agent_turns", []):
                    if t.get("latency_from") == "end_of_speech":
                        for name, value in (t.get("latency_ms") or {}).items():
                            marks.setdefault(phase, {}).setdefault(name, []).append(value)
    rooms = bare_metrics(stack.workers["bare"])
    for s in samples:
        if s["phase"] == "bare" and s["ok"]:
            s["livekit_metrics"] = rooms.get(s["room"], [])
            for m in s["livekit_metrics"]:
                for name in LIVEKIT_METRICS:
                    if name in m:
                        marks.setdefault("bare", {}).setdefault(name, []).append(m[name] * 1000)
    for phase, named in marks.items():
        source = "livekit metrics" if phase == "bare" else "agent-turn latency_ms"
        worker_rows += [
            [f"{phase}: {source} {name}", fmt(statistics.median(v), digits=0), str(len(v))]
            for name, v in named.items()
        ]
    print_table(
        "worker side, median ms from livekit's end of speech (Switchboard: its turn latency "
        "marks; bare: livekit's per-message metrics, the LLM's and TTS's from their own start)",
        ["measure", "median", "n"],
        worker_rows,
    )
    return {
        "headline": headline,
        "worker_side_ms": {
            phase: {k: summary(v) for k, v in named.items()} for phase, named in marks.items()
        },
    }


LIVEKIT_METRICS = (
    "end_of_turn_delay",
    "transcription_delay",
    "on_user_turn_completed_delay",
    "llm_node_ttft",
    "llm_node_ttfs",
    "tts_node_ttfb",
    "e2e_latency",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=12, help="measured sessions per worker")
    parser.add_argument("--turns", type=int, default=2, help="spoken questions per session")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of quiet in between")
    parser.add_argument(
        "--llm",
        choices=("simulated", "local"),
        default="simulated",
        help="the simulated endpoint (300 ms TTFT, 50 tok/s) or the embedded CPU model",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=list(PHASES),
        default=list(PHASES),
        help="which to measure (bare always runs: every ratio is against it)",
    )
    args = parser.parse_args()
    phases = [p for p in PHASES if p in args.phases or p == "bare"]
    info = machine_info()
    started = time.monotonic()
    stack_options: dict[str, Any] = {"max_sessions": 8, "voice": True}
    if args.llm == "simulated":
        stack_options["llm"] = "simulated"
    with LoadWatch() as load, BenchStack(**stack_options) as stack:
        print(f"stack up in {time.monotonic() - started:.1f}s; run dir {stack.run_dir}", flush=True)
        samples = asyncio.run(run_sessions(stack, phases, args.sessions, args.turns, args.settle))
        result = report(samples, stack, phases)
    headline = result["headline"]["end of speech -> first agent audio"]
    for phase in phases:
        if phase != "bare":
            print(
                f"target: end of speech -> first agent audio <= 1.05x bare; {phase}: "
                f"p50 {fmt(headline[phase]['ratio_p50'], 'x', 2)}, "
                f"p95 {fmt(headline[phase]['ratio_p95'], 'x', 2)}"
            )
    print(load.describe(info["cpus"]) + f"; total {time.monotonic() - started:.0f}s")
    path = write_results(
        "voice_latency",
        {
            "machine": info,
            "load": load.report(),
            "args": vars(args),
            "result": result,
            "samples": samples,
            "wall_s": time.monotonic() - started,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
