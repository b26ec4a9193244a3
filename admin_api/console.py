"""The web console and the API's docs page, served from the console's build (`make console`).

    /console/            index.html (and for any other extension-less path: the routes are
                         hash-based, so a reload or a pasted link still gets the page)
    /console/assets/*    Vite's content-hashed bundles: cached for a year, immutable
    /console/swagger/*   Swagger UI's files (the build copies them): revalidated
    /docs                Swagger UI from those files, never from a CDN (blank offline)
    /                    redirects to /console/

Same origin as the API, so the console needs no CORS and carries no key: the user types one,
and every call it makes is a documented API call. None of these routes is in the OpenAPI
schema. The build directory is looked at on each request, so building the console while the
API runs is enough; until then the console's paths answer a page saying how to build it.

ReDoc is not served: its standalone bundle would be one more npm dependency for a second
rendering of the same document that /docs already shows.
"""

import base64
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.staticfiles import NotModifiedResponse, StaticFiles

from admin_api.problems import problem_response
from admin_api.settings import AdminSettings

logger = logging.getLogger(__name__)

CONSOLE_PATH = "/console/"
SWAGGER_PATH = f"{CONSOLE_PATH}swagger/"
IMMUTABLE = "public, max-age=31536000, immutable"  # assets/ names change whenever their bytes do
REVALIDATE = "no-cache"  # cached, but asked again (ETag) before each use: a rebuild shows at once

# What Vite emits, typed here rather than by `mimetypes`, which reads the host's
# /etc/mime.types: a module script served with any non-JavaScript type does not run.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".wav": "audio/wav",
}

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The console is not built</h1>
<p>The admin API serves the web console (and the Swagger UI of <code>/docs</code>) from the
console's build, which is not there yet. Build it, then reload this page:</p>
<pre>make console                                 # or make dev, which builds it first
cd console &amp;&amp; npm ci &amp;&amp; npm run build     # the same, by hand (Node &gt;= 20)</pre>
<p>A build elsewhere is served when <code>ADMIN_API_CONSOLE_DIR</code> names it.
The API itself works meanwhile: <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>
"""


def content_security_policy(
    livekit_url: str | None, inline_script_hashes: Sequence[str] = ()
) -> str:
    """The CSP of the console's responses: everything from this origin, plus the LiveKit server
    its tokens name. /docs passes no LiveKit URL and the hash of its one inline script."""
    sources = {
        "default-src": ["'self'"],  # anything not listed below: this origin only
        # The bundles in assets/, no inline script and no eval; /docs adds its starter by hash.
        "script-src": ["'self'", *(f"'sha256-{digest}'" for digest in inline_script_hashes)],
        # CodeMirror injects <style> elements; React and Swagger UI set style attributes.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],  # inline SVG favicon and icons, snapshots
        "media-src": ["'self'", "blob:", "mediastream:"],  # the agent's audio, the microphone
        # The API (self) and LiveKit: livekit-client opens the signal WebSocket and, when it
        # fails, fetches the same server over http(s) to say why (its /rtc/validate check).
        "connect-src": ["'self'", *(livekit_sources(livekit_url) if livekit_url else [])],
        "worker-src": ["'self'", "blob:"],  # livekit-client's workers (end-to-end encryption)
        "object-src": ["'none'"],  # no plugins
        "base-uri": ["'none'"],  # no injected <base> may re-point the relative URLs
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],  # never framed (X-Frame-Options says it to old browsers)
    }
    return "; ".join(f"{directive} {' '.join(values)}" for directive, values in sources.items())


def livekit_sources(livekit_url: str) -> list[str]:
    """The LiveKit URL's origin in both its WebSocket and its HTTP form (ws <-> http, wss <->
    https); for LiveKit Cloud also its other hosts, since livekit-client fails over to regional
    ones. A URL that is neither ws(s) nor http(s) adds nothing (and is logged)."""
    twins = {"ws": "http", "wss": "https", "http": "ws", "https": "wss"}
    parts = urlsplit(livekit_url)
    if parts.scheme not in twins or not parts.netloc:
        logger.warning(
            "LiveKit URL %r is not ws(s):// or http(s)://: the console cannot reach it", livekit_url
        )
        return []
    hosts = [parts.netloc]
    if (parts.hostname or "").endswith((".livekit.cloud", ".livekit.run")):
        hosts.append("*." + ".".join((parts.hostname or "").split(".")[-2:]))
    return [
        f"{scheme}://{host}" for host in hosts for scheme in (parts.scheme, twins[parts.scheme])
    ]


def security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


class ConsoleBuild:
    """The build directory and the lookup of one file in it, refusing any path out of it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Starlette's lookup: resolves symlinks and refuses a result outside the directory.
        self._files = StaticFiles(directory=directory, check_dir=False)

    @property
    def is_built(self) -> bool:
        return (self.directory / "index.html").is_file()

    def find(self, relative: str) -> tuple[str, os.stat_result] | None:
        """The file at `relative` (a URL path below /console/), or None. A `..` segment is
        refused outright rather than normalized away: no honest link contains one."""
        segments = [segment for segment in relative.split("/") if segment not in ("", ".")]
        if any(segment == ".." or "\\" in segment or "\0" in segment for segment in segments):
            return None
        if not segments:
            return None
        full_path, stat_result = self._files.lookup_path(os.path.join(*segments))
        if stat_result is None or not Path(full_path).is_file():
            return None
        return full_path, stat_result

    def response(
        self, found: tuple[str, os.stat_result], request: Request, headers: dict[str, str]
    ) -> Response:
        """The file, typed by its suffix; a 304 when the client's copy (ETag / date) is current."""
        full_path, stat_result = found
        response = FileResponse(
            full_path,
            stat_result=stat_result,
            media_type=CONTENT_TYPES.get(Path(full_path).suffix, "application/octet-stream"),
            headers=headers,
        )
        if self._files.is_not_modified(response.headers, Headers(scope=request.scope)):
            return NotModifiedResponse(response.headers)
        return response


def install_console(app: FastAPI, settings: AdminSettings) -> None:
    """Adds /console/..., /docs and the / redirect to `app` (outside its OpenAPI schema)."""
    build = ConsoleBuild(settings.admin_api_console_dir)
    if not build.is_built:
        logger.warning(
            "no console build in %s (run `make console`): /console/ and /docs say how to build it",
            settings.admin_api_console_dir,
        )
    headers = security_headers(content_security_policy(settings.frontend_livekit_url))
    docs_page = swagger_ui_page(app.openapi_url or "/openapi.json", f"{app.title} docs")
    docs_headers = security_headers(content_security_policy(None, inline_script_hashes(docs_page)))

    def not_built() -> Response:
        return HTMLResponse(
            NOT_BUILT_PAGE, status_code=503, headers=headers | {"Cache-Control": "no-store"}
        )

    # Plain functions: Starlette runs them in its thread pool, so the file lookups never
    # block the event loop.
    def console_file(request: Request) -> Response:
        if not build.is_built:
            return not_built()
        relative = request.path_params["path"]
        found = build.find(relative)
        if found is None:
            last_segment = relative.rstrip("/").rpartition("/")[2]
            if relative.startswith(("assets/", "swagger/")) or "." in last_segment:
                response: Response = problem_response(
                    request, 404, "about:blank", "Not found", "no such file in the console's build"
                )
                response.headers.update(headers)
                return response
            found = build.find("index.html")  # a page of the app: the app's own router shows it
            if found is None:  # removed since is_built was checked
                return not_built()
        cache = IMMUTABLE if relative.startswith("assets/") else REVALIDATE
        return build.response(found, request, headers | {"Cache-Control": cache})

    def docs(request: Request) -> Response:
        if build.find("swagger/swagger-ui-bundle.js") is None:
            return not_built()
        return HTMLResponse(docs_page, headers=docs_headers | {"Cache-Control": REVALIDATE})

    def to_console(request: Request) -> Response:
        return RedirectResponse(CONSOLE_PATH, status_code=307)

    for route in (
        Route("/", to_console, methods=["GET"], include_in_schema=False),
        Route(CONSOLE_PATH.rstrip("/"), to_console, methods=["GET"], include_in_schema=False),
        Route(CONSOLE_PATH + "{path:path}", console_file, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
    ):
        app.router.routes.append(route)


def swagger_ui_page(openapi_url: str, title: str) -> str:
    """FastAPI's Swagger UI page, pointed at the console build's copy of Swagger UI; its
    validator badge (an image from validator.swagger.io) is off: nothing leaves the origin."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{SWAGGER_PATH}swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_PATH}swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_PATH}favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    return bytes(page.body).decode()


def inline_script_hashes(page: str) -> list[str]:
    """Base64 SHA-256 of each inline <script> of `page`, as a CSP hash source names it."""
    return [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    ]
