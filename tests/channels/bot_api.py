"""A Bot-API-compatible server on loopback: what api.telegram.org is to a bot, for the tests.

Real HTTP on port 0 (aiohttp), the same paths and answers as Telegram's
(`/bot<token>/<method>`, `/file/bot<token>/<file_path>`, `{"ok": true, "result": ...}`), for what
the Telegram channel uses: getMe, getUpdates (a long poll on the updates a test pushes),
sendMessage, sendChatAction, getFile and the file download, setWebhook / deleteWebhook. A wrong
token gets Telegram's 401. Every call is recorded, so a test asserts what the user would see in
the chat (the replies, the typing indicator) and awaits it instead of sleeping.
"""

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Switchboard", "username": "switchboard_bot"}


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class BotApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.webhook: dict[str, str] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._files: dict[str, bytes] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=1_000_000)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        # a request still open at the end is cut after 1 s, not aiohttp's default 60 s
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._closing = True  # an open long poll answers now, so the server stops at once
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "BotApiServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # What the test does as Telegram's users.

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queues an update for getUpdates (an `update_id` is given if it has none)."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return update

    def message(self, chat_id: int, user_id: int, **content: Any) -> dict[str, Any]:
        """An update's `message` from a private chat: `text="hi"`, `voice={...}`, `sticker=...`."""
        return {
            "message": {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
                "from": {"id": user_id, "is_bot": False, "first_name": "Ada"},
                **content,
            }
        }

    def add_file(self, data: bytes, suffix: str = "oga") -> dict[str, Any]:
        """Serves `data` as a file; returns the `voice` object of a message carrying it."""
        file_id = f"file-{len(self._files) + 1}"
        self._files[file_id] = data
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": 3,
            "mime_type": "audio/ogg",
            "file_size": len(data),
        }

    # What the test asserts.

    def said(self, chat_id: int) -> list[str]:
        """The texts the bot sent to that chat, in order."""
        return [
            c.params["text"]
            for c in self.calls
            if c.method == "sendMessage" and c.params.get("chat_id") == str(chat_id)
        ]

    def called(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and (chat_id is None or c.params.get("chat_id") == str(chat_id))
        ]

    async def wait_for(self, check: Callable[["BotApiServer"], Any], timeout: float = 15.0) -> Any:
        """Waits until `check(self)` is truthy (re-checked on every call the bot makes)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while not (result := check(self)):
                    await self._changed.wait()
                return result

    async def said_at_least(self, chat_id: int, count: int, timeout: float = 15.0) -> list[str]:
        return await self.wait_for(
            lambda s: s.said(chat_id) if len(s.said(chat_id)) >= count else None, timeout
        )

    # The Bot API.

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = {k: v for k, v in request.query.items()}
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                params |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
            else:
                params |= {k: str(v) for k, v in (await request.post()).items()}
        return params

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        if method != "getUpdates":
            self.calls.append(Call(method, params))
            self._notify()
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        self.calls.append(Call("downloadFile", {"file_id": file_id}))
        self._notify()
        data = self._files.get(file_id)
        if data is None:
            return _error(404, "Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _getMe(self, params: dict[str, str]) -> Any:
        return BOT_USER

    async def _getUpdates(self, params: dict[str, str]) -> Any:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    async with self._changed:
                        while not self._updates and not self._closing:
                            await self._changed.wait()
            except TimeoutError:
                pass
        return self._updates[:limit]

    async def _sendMessage(self, params: dict[str, str]) -> Any:
        if not params.get("text"):
            return _error(400, "Bad Request: message text is empty")
        if len(params["text"].encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": BOT_USER,
            "text": params["text"],
        }

    async def _sendChatAction(self, params: dict[str, str]) -> Any:
        return True

    async def _getFile(self, params: dict[str, str]) -> Any:
        file_id = params.get("file_id", "")
        if file_id not in self._files:
            return _error(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self._files[file_id]),
            "file_path": f"voice/{file_id}",
        }

    async def _setWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = params
        return True

    async def _deleteWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = None
        return True


def _error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )
