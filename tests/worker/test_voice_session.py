"""Voice end to end on the local stack: the client speaks (espeak-ng speech as a microphone
track), the agent hears it (silero VAD + Whisper tiny.en), answers (the scripted model) and
speaks back (espeak-ng), with transcriptions of both sides on `lk.transcription`."""

from typing import Any

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase

from devstack.frontend import RoomClient
from tests.worker.conftest import agent_changed
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


async def test_a_spoken_question_gets_a_spoken_answer(
    client: RoomClient, worker: Any, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers: hearing and speaking are judged, and a blank answer of the
    embedded model would be a failed turn with nothing to say."""
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "support", "user_id": "u-voice"})
        assert await client.routed_agent() == ("support-agent-v1", "purpose")
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
