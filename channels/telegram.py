"""The Telegram bot channel: a binding's bot answers its chats with the binding's agent.

Updates come by long polling (getUpdates, the default: no public URL needed) or by webhook
(`POST /telegram/{binding_id}`, each request carrying the secret the operator gave setWebhook
in `X-Telegram-Bot-Api-Secret-Token`; anything else is 401). Each private chat is a
conversation of the hub (`conversation_id` = the chat id; in a group, each member's own: see
`conversation_of`), the user the sender's Telegram id (trusted: Telegram says who sent it); the
user sees "typing..." until the answer comes (Telegram shows it for 5 s,
so it is sent again every 4 s), then the answer as one or more messages (4096 characters each
at most, Telegram's limit).

A voice note is downloaded (bounded), decoded to PCM (channels/voice_notes.py) and handed to the
hub as audio: the conversation's room is then a voice-in one, where the agent's own STT
transcribes it and the answer comes back as text. Anything else (a sticker, a photo, an edited
message) gets a one-line answer saying what the bot reads; a refusal of the hub (too many
messages, too long, the agent away) gets a short answer saying so. Nothing is answered where
there is no chat to answer in.

Every Bot API call goes through `BoundedBotRequest` (egress-checked, bounded, token redacted).
"""

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from telegram import Bot, Message, Update, Voice
from telegram.error import Forbidden, InvalidToken, RetryAfter, TelegramError

from agent_configs.channels import ChannelBinding, ChannelKind, TelegramSettings
from agent_configs.egress import EgressPolicy, EgressRefused
from channels.hub import ChannelError, Hub, Inbound
from channels.registry import ChannelContext, Runners, register
from channels.telegram_request import MAX_API_BYTES, MAX_FILE_BYTES, BoundedBotRequest
from channels.voice_notes import MAX_SECONDS, VoiceNoteRefused, VoiceNoteTooLong, decode_voice_note

logger = logging.getLogger("switchboard.channels.telegram")

MESSAGE_LIMIT = 4096
"""Telegram's longest text message, in UTF-16 code units."""
TYPING_EVERY_S = 4.0
"""Telegram shows a chat action for 5 s (or until the bot's next message)."""
POLL_TIMEOUT_S = 25
"""getUpdates' long poll: Telegram holds the request up to this long when nothing comes."""
STOP_GRACE_S = 5.0
"""On stop, messages already taken get this long to be answered before they are cancelled."""
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

UNSUPPORTED = "I can read text and voice messages."
UNREADABLE_VOICE = "I could not play that voice note: please try again or type your message."
NO_ANSWER = "I have no answer to that: please try again."
FAILED = "Something went wrong and your message was not answered: please try again."


class TelegramSetupError(RuntimeError):
    """The binding cannot run: its token or secret variable is unset, or the egress policy
    does not allow the token to go to the Bot API host. The message names the field."""


def refusal_text(error: ChannelError, binding: ChannelBinding) -> str:
    """What the user reads when the hub answered with an error instead of the agent."""
    match error.code:
        case "rate_limited":
            wait = max(1, math.ceil(error.retry_after_s or 1))
            return f"Too many messages: try again in {wait} s."
        case "too_long":
            return (
                f"That message is too long: I read at most {binding.max_message_chars} characters."
            )
        case "disabled":
            return "This bot is not taking messages right now."
        case "timeout":
            return "No answer came in time: please send your message again."
        case "no_agent":
            return "No agent is available right now: please try again in a moment."
        case "unsupported" | "malformed":
            return UNSUPPORTED
        case _:
            return FAILED


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Parts of at most `limit` UTF-16 code units (how Telegram counts), cut at the last line
    break or space of each part when there is one, so words are not split."""
    parts: list[str] = []
    rest = text
    while _units(rest) > limit:
        cut = _prefix_fitting(rest, limit)
        space = max(rest.rfind("\n", 0, cut), rest.rfind(" ", 0, cut))
        if space > cut // 2:
            cut = space + 1
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip():
        parts.append(rest)
    return parts


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_fitting(text: str, limit: int) -> int:
    """The longest prefix (in characters) of at most `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def conversation_of(chat_id: int, chat_type: str, user_id: int) -> str:
    """The hub's conversation of a message: the chat, for a private one (its id is the user's);
    in a group, each member's own. A conversation's room is opened for one trusted user (its
    `user_id`, which memory and records key on): a second member writing into it would be taken
    for the first. The answer still goes to the group."""
    return str(chat_id) if chat_type == "private" else f"{chat_id}:{user_id}"


def update_problem(data: Any) -> str | None:
    """What makes a webhook body not an update, naming the field; None when it is one. Only
    what the channel reads is checked: Telegram adds fields over time."""
    if not isinstance(data, dict):
        return "body: an update is a JSON object"
    if not isinstance(data.get("update_id"), int) or isinstance(data.get("update_id"), bool):
        return "update_id: required, an integer"
    for kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
        message = data.get(kind)
        if message is None:
            continue
        if not isinstance(message, dict):
            return f"{kind}: a message is a JSON object"
        for name in ("message_id", "date"):
            if not isinstance(message.get(name), int):
                return f"{kind}.{name}: required, an integer"
        chat = message.get("chat")
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
            return f"{kind}.chat.id: required, an integer"
        sender = message.get("from")
        if sender is not None and not (
            isinstance(sender, dict) and isinstance(sender.get("id"), int)
        ):
            return f"{kind}.from.id: an integer"
        if "text" in message and not isinstance(message["text"], str):
            return f"{kind}.text: a string"
        voice = message.get("voice")
        if voice is not None and not (
            isinstance(voice, dict) and isinstance(voice.get("file_id"), str)
        ):
            return f"{kind}.voice.file_id: required, a string"
    return None


def _chat_of(data: Any) -> int | None:
    """The chat an update came from, read from the raw update (for one that does not parse)."""
    if not isinstance(data, dict):
        return None
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("chat"), dict):
            chat_id = value["chat"].get("id")
            if isinstance(chat_id, int):
                return chat_id
    return None


class TelegramChannel:
    """One binding's bot: `start()` checks the token and the policy and begins polling (in
    polling mode), `handle_update()` takes one update (from the poll or the webhook)."""

    def __init__(
        self,
        binding: ChannelBinding,
        hub: Hub,
        egress: EgressPolicy,
        *,
        environ: Mapping[str, str] | None = None,
        poll_timeout_s: int = POLL_TIMEOUT_S,
        max_voice_bytes: int = MAX_FILE_BYTES,
        max_voice_s: float = MAX_SECONDS,
    ) -> None:
        assert binding.telegram is not None
        self.binding = binding
        self.settings: TelegramSettings = binding.telegram
        self._hub = hub
        self._egress = egress
        self._environ = environ if environ is not None else os.environ
        self._poll_timeout_s = poll_timeout_s
        self._max_voice_bytes = max_voice_bytes
        self._max_voice_s = max_voice_s
        self._bot: Bot | None = None
        self._request: BoundedBotRequest | None = None
        self._updates_request: BoundedBotRequest | None = None
        self._secret: bytes | None = None
        self._offset = 0
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_in_chat: dict[int, asyncio.Task[None]] = {}

    @property
    def webhook(self) -> bool:
        return self.settings.mode == "webhook"

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        token = self._environ.get(settings.token_env, "")
        if not token:
            raise TelegramSetupError(f"telegram.token_env: {settings.token_env} is not set")
        try:
            self._egress.check(
                settings.api_base_url, secret_env=settings.token_env, field="telegram.token_env"
            )
        except EgressRefused as exc:
            raise TelegramSetupError(str(exc)) from None
        if self.webhook:
            assert settings.webhook_secret_env is not None
            secret = self._environ.get(settings.webhook_secret_env, "")
            if not secret:
                raise TelegramSetupError(
                    f"telegram.webhook_secret_env: {settings.webhook_secret_env} is not set"
                )
            self._secret = secret.encode()
        base = settings.api_base_url.rstrip("/")
        self._request = self._new_request(token, base)
        # getUpdates has a connection of its own, so a long poll never waits behind a reply
        self._updates_request = self._new_request(token, base)
        self._bot = Bot(
            token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=self._request,
            get_updates_request=self._updates_request,
        )
        try:
            await self._bot.initialize()  # getMe: a wrong token fails here, not at a message
            if not self.webhook:
                # getUpdates is refused while a webhook is set (409): polling means no webhook
                await self._bot.delete_webhook()
        except TelegramError as exc:
            await self._bot.shutdown()
            reason = self._request.redact(str(exc))
            if isinstance(exc, InvalidToken | Forbidden):
                raise TelegramSetupError(
                    f"telegram.token_env: the Bot API refused the token: {reason}"
                ) from None
            raise TelegramSetupError(
                f"telegram.api_base_url: the Bot API did not answer as one: {reason}"
            ) from None
        if not self.webhook:
            self._poller = asyncio.create_task(
                self._poll_forever(), name=f"telegram.{self.binding.binding_id}"
            )
        logger.info(
            "telegram %s: bot @%s %s",
            self.binding.binding_id,
            self._bot.username,
            "takes webhooks" if self.webhook else "polls for updates",
        )

    def _new_request(self, token: str, base: str) -> BoundedBotRequest:
        return BoundedBotRequest(
            token=token,
            token_env=self.settings.token_env,
            api_base_url=base,
            policy=self._egress,
            max_bytes=MAX_API_BYTES,
            max_file_bytes=self._max_voice_bytes,
        )

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._tasks:
            # messages already taken from Telegram (the offset moved past them) are answered
            # if they can be in a few seconds
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._bot is not None:
            with contextlib.suppress(Exception):
                await self._bot.shutdown()
            self._bot = None

    # -- updates ------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        assert self._bot is not None and self._updates_request is not None
        request = self._updates_request
        url = f"{self._bot.base_url}/getUpdates"
        pause = 1.0
        while True:
            params = {
                "offset": self._offset,
                "timeout": self._poll_timeout_s,
                "allowed_updates": ["message", "edited_message"],
            }
            try:
                updates = await request.call(url, params, read_timeout=self._poll_timeout_s + 10.0)
            except TelegramError as exc:
                logger.warning(
                    "telegram %s: getUpdates failed (again in %.0f s): %s",
                    self.binding.binding_id,
                    pause,
                    request.redact(str(exc)),
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            pause = 1.0
            for data in updates if isinstance(updates, list) else []:
                update_id = data.get("update_id") if isinstance(data, dict) else None
                if isinstance(update_id, int):
                    self._offset = max(self._offset, update_id + 1)
                self.handle_update(data)

    def secret_matches(self, header: str | None) -> bool:
        if self._secret is None or header is None:
            return False
        return hmac.compare_digest(header.encode(), self._secret)

    def handle_update(self, data: Any) -> None:
        """Takes one raw update. Each is answered in a task of its own, so one chat's slow
        answer holds no other chat (and a refusal is decided at once), but a chat's answers are
        sent in the order of its messages: each task waits for the one before it in the same
        chat before it sends (a sticker sent after a question is answered after the question)."""
        chat_id = _chat_of(data)
        before = self._last_in_chat.get(chat_id) if chat_id is not None else None
        task = asyncio.create_task(self._process(data, before))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if chat_id is not None:
            self._last_in_chat[chat_id] = task
            task.add_done_callback(lambda t: self._forget(chat_id, t))

    def _forget(self, chat_id: int, task: "asyncio.Task[None]") -> None:
        if self._last_in_chat.get(chat_id) is task:
            del self._last_in_chat[chat_id]

    async def _process(self, data: Any, before: "asyncio.Task[None] | None") -> None:
        try:
            chat_id, texts = await self._answer(data)
            if before is not None:
                await asyncio.wait([before])
            for part in (p for t in texts for p in split_message(t)):
                assert chat_id is not None
                await self._say(chat_id, part)
        except Exception:
            logger.exception("telegram %s: an update was not answered", self.binding.binding_id)

    async def _answer(self, data: Any) -> tuple[int | None, list[str]]:
        """The chat to answer in (None: nowhere) and what to tell it."""
        assert self._bot is not None
        problem = update_problem(data)
        update: Update | None = None
        if problem is None:
            try:
                update = Update.de_json(data, self._bot)
            except Exception as exc:
                problem = f"update: {exc}"
        if update is None:
            logger.warning("telegram %s: a malformed update: %s", self.binding.binding_id, problem)
            chat_id = _chat_of(data)
            if chat_id is not None:
                self._refuse_raw(data, chat_id, ChannelError("malformed", str(problem)))
            return chat_id, [UNSUPPORTED]
        message = update.message
        chat = update.effective_chat
        if message is None or message.from_user is None:
            # an edited message, a channel post, a service update
            return (chat.id if chat is not None else None), [UNSUPPORTED]
        if message.text is not None:
            return message.chat_id, await self._ask(message, text=message.text)
        if message.voice is not None:
            audio = await self._voice(message.voice)
            if isinstance(audio, str):
                code = (
                    "too_long" if audio.startswith("That voice note is too long") else "malformed"
                )
                self._hub.refuse(self._inbound(message), ChannelError(code, audio))
                return message.chat_id, [audio]
            return message.chat_id, await self._ask(message, audio=audio)
        refused = ChannelError("unsupported", "only text and voice messages are read")
        self._hub.refuse(self._inbound(message), refused)
        return message.chat_id, [UNSUPPORTED]

    def _inbound(
        self, message: Message, *, text: str | None = None, audio: tuple[bytes, int] | None = None
    ) -> Inbound:
        assert message.from_user is not None
        return Inbound(
            self.binding,
            user=str(message.from_user.id),
            conversation_id=conversation_of(
                message.chat_id, message.chat.type, message.from_user.id
            ),
            text=text,
            audio=audio,
            message_id=str(message.message_id),
        )

    def _refuse_raw(self, data: Any, chat_id: int, error: ChannelError) -> None:
        """Records a malformed update against its chat (and its sender, when it names one)."""
        message = data.get("message") if isinstance(data, Mapping) else None
        sender = message.get("from") if isinstance(message, Mapping) else None
        user = sender.get("id") if isinstance(sender, Mapping) else None
        inbound = Inbound(
            self.binding,
            user=str(user if isinstance(user, int) else "unknown"),
            conversation_id=str(chat_id),
        )
        self._hub.refuse(inbound, error)

    async def _voice(self, voice: Voice) -> tuple[bytes, int] | str:
        """The voice note as PCM, or what to tell the user instead."""
        assert self._bot is not None and self._request is not None
        # the duration Telegram states is not checked: the decoder stops at the bound anyway
        too_long = f"That voice note is too long: I listen to {self._max_voice_s:g} s at most."
        if (voice.file_size or 0) > self._max_voice_bytes:
            return too_long
        try:
            file = await self._bot.get_file(voice.file_id)
            data = await file.download_as_bytearray()
            return await asyncio.to_thread(decode_voice_note, bytes(data), self._max_voice_s)
        except VoiceNoteTooLong:
            return too_long
        except (TelegramError, VoiceNoteRefused) as exc:
            logger.warning(
                "telegram %s: a voice note was not read: %s",
                self.binding.binding_id,
                self._request.redact(str(exc)),
            )
            return UNREADABLE_VOICE

    async def _ask(
        self, message: Message, *, text: str | None = None, audio: tuple[bytes, int] | None = None
    ) -> list[str]:
        """The agent's answer (after its greeting when the message opened the session), or
        the hub's refusal in words; "typing..." is shown meanwhile."""
        chat_id = message.chat_id
        inbound = self._inbound(message, text=text, audio=audio)
        typing = asyncio.create_task(self._typing(chat_id))
        try:
            reply = await self._hub.handle(inbound)
        except ChannelError as error:
            return [refusal_text(error, self.binding)]
        except Exception:  # a fault of ours: the user still hears that no answer comes
            logger.exception("telegram %s: a message was not answered", self.binding.binding_id)
            return [FAILED]
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        return [t for t in (reply.greeting, reply.text or NO_ANSWER) if t]

    async def _typing(self, chat_id: int) -> None:
        assert self._bot is not None
        while True:
            with contextlib.suppress(TelegramError):
                await self._bot.send_chat_action(chat_id, "typing")
            await asyncio.sleep(TYPING_EVERY_S)

    async def _say(self, chat_id: int, text: str) -> None:
        """Sends one message, waiting out Telegram's flood control (429) twice at most."""
        assert self._bot is not None and self._request is not None
        for _ in range(3):
            try:
                await self._bot.send_message(chat_id, text)
                return
            except RetryAfter as exc:
                await asyncio.sleep(min(_seconds(exc.retry_after), 60.0))
            except TelegramError as exc:
                logger.warning(
                    "telegram %s: a message to chat %s was not sent: %s",
                    self.binding.binding_id,
                    chat_id,
                    self._request.redact(str(exc)),
                )
                return


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


MAX_WEBHOOK_BYTES = MAX_API_BYTES


def telegram_routes(runners: Runners) -> APIRouter:
    """`POST /telegram/{binding_id}`: Telegram's webhook calls for the webhook-mode bindings."""
    router = APIRouter()

    @router.post("/telegram/{binding_id}", include_in_schema=False)
    async def webhook(
        binding_id: str,
        request: Request,
        secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> JSONResponse:
        if runners.stopping:  # Telegram sends the update again later, to whichever replica runs
            return _problem(503, "Service Unavailable", "the channels service is stopping")
        running = runners.get(binding_id)
        runner = running[1] if running is not None else None
        if not isinstance(runner, TelegramChannel) or not runner.webhook:
            return _problem(
                404, "Not Found", f"no Telegram webhook binding {binding_id!r} runs here"
            )
        if not runner.secret_matches(secret):
            return _problem(
                401, "Unauthorized", f"{SECRET_HEADER}: missing or not this binding's secret"
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return _problem(413, "Content Too Large", f"body: over {MAX_WEBHOOK_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            return _problem(400, "Bad Request", "body: not JSON")
        problem = update_problem(data)
        if problem is not None:
            return _problem(400, "Bad Request", problem)
        runner.handle_update(data)
        return JSONResponse({"ok": True})

    return router


def telegram_channel(binding: ChannelBinding, hub: Hub, context: ChannelContext) -> TelegramChannel:
    return TelegramChannel(binding, hub, context.egress)


register(ChannelKind.TELEGRAM, telegram_channel, telegram_routes)
