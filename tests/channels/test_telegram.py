"""The Telegram channel end to end: a Bot-API-compatible server on loopback (tests/channels/bot_api.py)
stands in for api.telegram.org, the channels service runs the binding's bot against it, and the
test reads the chat as the user would see it (the typing indicator, the answers, the refusals).
The scripted endpoint writes the agent's replies; one chat runs on the embedded model.
"""

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import numpy as np
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import (
    CHANNEL_MESSAGES,
    ChannelBinding,
    ChannelKind,
    RateLimit,
    TelegramSettings,
)
from agent_configs.egress import EgressPolicy
from channels.service import CHANNEL_STATUS, ChannelService
from channels.telegram import UNSUPPORTED, conversation_of, split_message
from channels.telegram_request import BotApiRefused, BoundedBotRequest
from channels.voice_notes import VoiceNoteRefused, VoiceNoteTooLong, decode_voice_note
from tests.channels.bot_api import BotApiServer
from tests.channels.conftest import EMBEDDED_TYPE, add_binding
from tests.worker.scripted_llm import REPLY, ScriptedLLM

TOKEN_ENV = "TELEGRAM_TEST_BOT_TOKEN"
SECRET_ENV = "TELEGRAM_TEST_WEBHOOK_SECRET"
TOKEN = f"4242:{uuid.uuid4().hex}"
SECRET = "webhook-secret-" + uuid.uuid4().hex[:8]
USER = 777
CHAT = 9001


@pytest.fixture(autouse=True)
def telegram_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's side: the token in its env var, which the egress policy lets go to
    loopback (the channels service reads the policy when the test's service starts)."""
    monkeypatch.setenv("EGRESS_SECRETS", json.dumps({TOKEN_ENV: ["loopback"]}))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApiServer]:
    async with BotApiServer(TOKEN) as server:
        yield server


def telegram_binding(binding_id: str, api: str, **more: Any) -> ChannelBinding:
    settings = {"token_env": TOKEN_ENV, "api_base_url": api} | more.pop("telegram", {})
    target = {} if "agent_id" in more else {"purpose": "support"}
    return ChannelBinding(
        binding_id=binding_id,
        kind=ChannelKind.TELEGRAM,
        telegram=TelegramSettings(**settings),
        **(target | more),
    )


async def records_of(database: AsyncDatabase, binding_id: str, count: int) -> list[dict[str, Any]]:
    """The binding's message records once `count` are written (the hub's writer is buffered)."""
    async with asyncio.timeout(10):
        while True:
            records = await database[CHANNEL_MESSAGES].find({"binding_id": binding_id}).to_list()
            if len(records) >= count:
                return records
            await asyncio.sleep(0.05)


async def status_of(database: AsyncDatabase, binding_id: str) -> dict[str, Any]:
    status = await database[CHANNEL_STATUS].find_one({"_id": binding_id})
    assert status is not None
    return status


def sticker() -> dict[str, Any]:
    return {
        "sticker": {
            "file_id": "s1",
            "file_unique_id": "us1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    }


async def test_a_chat_sees_typing_then_the_answer_and_every_refusal_in_words(
    bot_api: BotApiServer,
    channel_service: ChannelService,
    channels_database: AsyncDatabase,
    channels_llm: ScriptedLLM,
) -> None:
    binding = telegram_binding(
        "tg-chat", bot_api.url, max_message_chars=200, rate_limit=RateLimit(messages=2)
    )
    await add_binding(channel_service, binding)
    assert (await status_of(channels_database, "tg-chat"))["state"] == "running"
    assert bot_api.called("getMe") and bot_api.called("deleteWebhook"), "polling: no webhook"

    bot_api.push(bot_api.message(CHAT, USER, text="My invoice is wrong"))
    greeting, answer = await bot_api.said_at_least(CHAT, 2)
    assert answer == REPLY and greeting.startswith("Hi, you're through to support")
    methods = [c.method for c in bot_api.calls if c.params.get("chat_id") == str(CHAT)]
    assert methods[0] == "sendChatAction", "the typing indicator comes first"
    assert bot_api.called("sendChatAction", CHAT)[0].params["action"] == "typing"

    bot_api.push(bot_api.message(CHAT, USER, text="x" * 201))
    bot_api.push(bot_api.message(CHAT, USER, **sticker()))
    # an update without a chat is answered nowhere and holds up nothing after it
    bot_api.push({"message": {"message_id": 1, "date": 1, "text": "from nowhere"}})
    bot_api.push({"edited_message": bot_api.message(CHAT, USER, text="edited")["message"]})
    said = await bot_api.said_at_least(CHAT, 5)
    assert said[2] == "That message is too long: I read at most 200 characters."
    assert said[3:5] == [UNSUPPORTED, UNSUPPORTED]

    # a flood: the first message was one of two a minute; the next passes, the one after not
    bot_api.push(bot_api.message(CHAT, USER, text="And my plan?"))
    bot_api.push(bot_api.message(CHAT, USER, text="Hello??"))
    said = await bot_api.said_at_least(CHAT, 7)
    assert said[5] == REPLY, "a chat's answers come in the order of its messages"
    assert said[6].startswith("Too many messages: try again in ") and said[6].endswith(" s.")

    sent = [m for body in channels_llm.requests for m in body.get("messages", [])]
    assert not any("x" * 201 in str(m.get("content")) for m in sent), "refused: never sent"
    assert not any("Hello??" in str(m.get("content")) for m in sent)
    records = await records_of(channels_database, "tg-chat", 5)
    assert sorted((r["status"], (r["error"] or {}).get("code")) for r in records) == [
        ("processed", None),
        ("processed", None),
        ("refused", "rate_limited"),
        ("refused", "too_long"),
        ("refused", "unsupported"),  # the sticker: refused by the bot itself, recorded alike
    ]
    assert {r["user_id"] for r in records} == {f"telegram:tg-chat:{USER}"}
    assert {r["conversation_id"] for r in records} == {str(CHAT)}


async def test_the_webhook_takes_only_updates_with_the_secret_and_names_what_is_malformed(
    bot_api: BotApiServer, channel_service: ChannelService
) -> None:
    webhook = {"mode": "webhook", "webhook_secret_env": SECRET_ENV}
    await add_binding(channel_service, telegram_binding("tg-hook", bot_api.url, telegram=webhook))
    assert not bot_api.called("deleteWebhook"), "webhook mode leaves the webhook as set"
    url = f"{channel_service.url}/telegram/tg-hook"
    good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    update = {"update_id": 1} | bot_api.message(CHAT, USER, **sticker())
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(url, json=update)).status_code == 401
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
        refused = await http.post(url, json=update, headers=wrong)
        assert refused.status_code == 401
        assert "X-Telegram-Bot-Api-Secret-Token" in refused.json()["detail"]

        not_json = await http.post(url, content=b"{not json", headers=good)
        assert not_json.status_code == 400 and not_json.json()["detail"] == "body: not JSON"
        no_id = await http.post(url, json={"message": update["message"]}, headers=good)
        assert no_id.status_code == 400 and no_id.json()["detail"].startswith("update_id:")
        chatless = {"update_id": 2, "message": {"message_id": 3, "date": 1, "text": "hi"}}
        no_chat = await http.post(url, json=chatless, headers=good)
        assert no_chat.status_code == 400
        assert no_chat.json()["detail"].startswith("message.chat.id:")
        assert no_chat.headers["content-type"] == "application/problem+json"

        unknown = await http.post(f"{channel_service.url}/telegram/nobody", json=update)
        assert unknown.status_code == 404

        taken = await http.post(url, json=update, headers=good)
        assert taken.status_code == 200
    assert await bot_api.said_at_least(CHAT, 1) == [UNSUPPORTED]


def ogg_opus(pcm: bytes, rate: int) -> bytes:
    """What Telegram's apps record: Opus in OGG, mono."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for piece in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(piece):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


async def test_a_voice_note_is_transcribed_by_the_agents_stt_and_answered_in_text(
    bot_api: BotApiServer,
    channel_service: ChannelService,
    channels_database: AsyncDatabase,
    channels_llm: ScriptedLLM,
) -> None:
    from evals.speech import synthesize  # espeak-ng, as the voice evals speak

    # the first synthesis in a process loads the engine: ~1.4 s (importing worker.providers)
    # the words tests/worker/test_voice_session.py shows Whisper tiny.en gets right from espeak-ng
    # (without "Hello." it heard "i pass word with that female hammer arrived")
    speech, rate = await synthesize("Hello. My password reset email never arrived.")
    voice = bot_api.add_file(ogg_opus(speech, rate))
    await add_binding(channel_service, telegram_binding("tg-voice", bot_api.url))

    bot_api.push(bot_api.message(CHAT, USER, voice=voice))
    said = await bot_api.said_at_least(CHAT, 2, timeout=30)
    assert said[-1] == REPLY
    assert bot_api.called("getFile") and bot_api.called("downloadFile")
    heard = [
        str(m.get("content")).lower()
        for body in channels_llm.requests
        for m in body.get("messages", [])
        if m.get("role") == "user"
    ]
    assert any("password" in h or "email" in h for h in heard), heard
    (record,) = await records_of(channels_database, "tg-voice", 1)
    assert record["voice"] is True and record["status"] == "processed"


async def test_a_chat_on_the_embedded_model_gets_an_answer(
    bot_api: BotApiServer, channel_service: ChannelService
) -> None:
    await add_binding(
        channel_service, telegram_binding("tg-embedded", bot_api.url, agent_id=EMBEDDED_TYPE)
    )
    bot_api.push(bot_api.message(CHAT, USER, text="Hello, who are you?"))
    (answer,) = await bot_api.said_at_least(CHAT, 1, timeout=60)
    assert isinstance(answer, str) and answer.strip()
    assert bot_api.called("sendChatAction", CHAT)


async def test_a_bot_whose_token_may_not_go_to_its_api_or_is_refused_does_not_run(
    bot_api: BotApiServer,
    channel_service: ChannelService,
    channels_database: AsyncDatabase,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    elsewhere = telegram_binding("tg-elsewhere", "https://bots.example.com")
    await add_binding(channel_service, elsewhere)
    status = await status_of(channels_database, "tg-elsewhere")
    assert status["state"] == "error" and status["error"].startswith("telegram.token_env: ")
    assert "bots.example.com" in status["error"]

    monkeypatch.setenv(TOKEN_ENV, "4242:a-revoked-token")
    await add_binding(channel_service, telegram_binding("tg-revoked", bot_api.url))
    status = await status_of(channels_database, "tg-revoked")
    assert status["state"] == "error"
    assert status["error"].startswith("telegram.token_env: the Bot API refused the token")
    assert "a-revoked-token" not in status["error"] and "<token>" in status["error"]
    assert "a-revoked-token" not in caplog.text, "the token is never logged"

    await add_binding(channel_service, telegram_binding("tg-nowhere", "http://127.0.0.1:9"))
    status = await status_of(channels_database, "tg-nowhere")
    assert status["error"].startswith("telegram.api_base_url: ") and TOKEN not in status["error"]
    assert TOKEN not in caplog.text


async def test_the_bot_api_client_asks_the_egress_policy_and_reads_answers_bounded(
    bot_api: BotApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = EgressPolicy()
    small = BoundedBotRequest(
        token=TOKEN, token_env=TOKEN_ENV, api_base_url=bot_api.url, policy=policy, max_bytes=64
    )
    with pytest.raises(BotApiRefused, match="larger than 64 bytes"):
        await small.do_request(f"{bot_api.url}/bot{TOKEN}/getMe", "POST")
    await small.shutdown()
    monkeypatch.setenv("EGRESS_SECRETS", "{}")  # the operator never allowed the token out
    strict = EgressPolicy()
    guarded = BoundedBotRequest(
        token=TOKEN, token_env=TOKEN_ENV, api_base_url=bot_api.url, policy=strict
    )
    with pytest.raises(BotApiRefused) as refused:
        await guarded.do_request(f"{bot_api.url}/bot{TOKEN}/getMe", "POST")
    assert "telegram.token_env" in str(refused.value) and TOKEN not in str(refused.value)
    assert len(bot_api.called("getMe")) == 1, "the refused call never left"


def test_long_answers_are_split_below_telegrams_limit_at_spaces() -> None:
    text = ("word " * 2000).strip()
    parts = split_message(text)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert " ".join(parts) == text, "cut between words, nothing lost"
    emoji = "\U0001f600" * 3000  # two UTF-16 units each: 6000 units
    assert [len(p) for p in split_message(emoji)] == [2048, 952]
    assert split_message("short") == ["short"]


def test_a_voice_note_decodes_to_48_khz_mono_pcm_within_its_bound() -> None:
    rate = 16_000
    tone = (np.sin(np.arange(rate * 2) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
    note = ogg_opus(tone.tobytes(), rate)
    pcm, decoded_rate = decode_voice_note(note)
    assert decoded_rate == 48_000 and abs(len(pcm) / 2 / 48_000 - 2.0) < 0.1
    with pytest.raises(VoiceNoteTooLong):
        decode_voice_note(note, max_seconds=1.0)
    with pytest.raises(VoiceNoteRefused, match="not audio"):
        decode_voice_note(b"OggS but not really a voice note")


def test_each_member_of_a_group_has_a_conversation_of_their_own() -> None:
    assert conversation_of(CHAT, "private", CHAT) == str(CHAT)
    assert conversation_of(-100123, "supergroup", USER) == f"-100123:{USER}"
    assert conversation_of(-100123, "group", USER + 1) != conversation_of(-100123, "group", USER)
