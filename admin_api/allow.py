"""OPTIONS on any path: 204 with `Allow`, the methods that path's routes accept (RFC 9110 9.3.7).

FastAPI routes answer only the methods they declare, so without this an OPTIONS request was
a 405 and a client had no way to ask what a path supports short of reading /openapi.json.
The answer comes from the app's own route table, so it cannot drift from what the API does.
No key is needed: the same facts are in the public OpenAPI document. An unknown path is a 404
problem, as for any other method. A CORS preflight (OPTIONS with Origin and
Access-Control-Request-Method) never gets here: CORSMiddleware, outside this one, answers it.

Pure ASGI, like the other middlewares here, so other requests pay one string comparison.
Its requests are counted under the `unmatched` route label (no route handles them).
"""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.problems import problem_response

# RFC 9110's order, which is also how people read them.
PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(scope: Scope) -> list[str]:
    """The methods some route fully matches for this path; empty when no route has the path.

    Each method is asked of the app's routes as the router itself would (`route.matches`), so
    this holds for plain routes and included routers alike without reading router internals.
    """
    routes = scope["app"].routes
    allowed = [
        method
        for method in PROBED_METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return [*allowed, "OPTIONS"] if allowed else []


class AllowMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(scope)
        if not methods:
            response: Response = problem_response(
                Request(scope), 404, "about:blank", "Not found", "no route has this path"
            )
        else:
            response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
        await response(scope, receive, send)
