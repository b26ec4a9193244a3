"""What a frontend's requested modality does to the session of a voice-capable type (no services)."""

from pathlib import Path

import yaml

from agent_configs.models import AgentConfig, Modality
from worker.session import VOICE_IN, for_frontend, is_voice, room_options, speaks

SUPPORT = Path(__file__).parents[2] / "agent_configs" / "defaults" / "support.yaml"


def support() -> AgentConfig:
    return AgentConfig.model_validate(yaml.safe_load(SUPPORT.read_text()))


def test_a_voice_in_frontend_gets_the_types_speech_recognition_but_no_speech_out() -> None:
    config = for_frontend(support(), VOICE_IN)
    assert is_voice(config) and config.stt is not None and config.vad == support().vad
    assert config.tts is None and not speaks(config)
    options = room_options(config, "telegram-user")
    assert options.audio_input is True and options.audio_output is False
    assert options.text_output is not False  # the replies go out as text


def test_a_voice_session_still_speaks_and_a_text_frontend_still_gets_text_only() -> None:
    voice = for_frontend(support(), None)
    assert speaks(voice)
    options = room_options(voice, None)
    assert options.audio_input is True and options.audio_output is True
    text = for_frontend(support(), "text")
    assert text.modalities == [Modality.TEXT] and not speaks(text)
    text_options = room_options(text, None)
    assert text_options.audio_input is False and text_options.audio_output is False


def test_a_text_only_type_asked_for_voice_in_stays_as_configured() -> None:
    text_only = support().model_copy(update={"modalities": [Modality.TEXT]})
    assert for_frontend(text_only, VOICE_IN) == text_only
