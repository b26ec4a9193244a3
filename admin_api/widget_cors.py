"""CORS for the website widget's token route, which other sites' pages call.

The API-wide CORSMiddleware (ADMIN_API_CORS_ORIGINS: the operator's own frontends) and the
OPTIONS answer of allow.py would both take the widget's preflight first: this middleware sits
outside them and, on the widget's path only,

- answers a preflight (OPTIONS with Origin and Access-Control-Request-Method) itself, with the
  route module's `widget_preflight`;
- adds `Vary: Origin` to every answer, and `Access-Control-Allow-Origin: <origin>` when the
  route noted that the key's binding lists the page's origin (ALLOWED_ORIGIN_STATE in the
  request's state), whatever the status: a refusal the page may read says why.

Every other request passes through untouched after one string comparison. A plain OPTIONS
(no preflight) still gets allow.py's `Allow` answer.
"""

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class WidgetCorsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        path: str,
        preflight: Callable[[Request], Awaitable[Response]],
        state_key: str,
    ) -> None:
        self.app = app
        self.path = path
        self.preflight = preflight
        self.state_key = state_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            scope["method"] == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        ):
            response = await self.preflight(Request(scope, receive))
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer.add_vary_header("Origin")
                allowed = state.get(self.state_key)
                if isinstance(allowed, str):
                    answer["Access-Control-Allow-Origin"] = allowed
            await send(message)

        await self.app(scope, receive, with_cors)
