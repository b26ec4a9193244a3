"""The admin API serves the console's build and an offline /docs, with the headers a browser
needs to cache it right and to confine it (admin_api/console.py).

These read the real build in console/dist, which `make test` builds first (`make console`).
"""

import re
from pathlib import Path

import httpx
import pytest

from admin_api.console import CONSOLE_PATH
from admin_api.settings import SOURCE_CONSOLE_DIR, AdminSettings
from devstack import REPO_ROOT, Endpoints
from tests.admin_api.conftest import admin_settings, running_app

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module", autouse=True)
def console_build() -> Path:
    if not (SOURCE_CONSOLE_DIR / "index.html").is_file():
        pytest.fail(
            f"no console build in {SOURCE_CONSOLE_DIR}: run `make console` (make test does it first)"
        )
    return SOURCE_CONSOLE_DIR


def csp_directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    return {name: values for name, *values in (part.split() for part in policy.split(";"))}


def bundle_paths(index_html: str) -> list[str]:
    """The files index.html loads: Vite's hashed bundles under /console/assets/."""
    return re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', index_html)


async def test_the_console_page_is_revalidated_each_time_and_confined_by_its_policy(
    api: httpx.AsyncClient, settings: AdminSettings
) -> None:
    page = await api.get(CONSOLE_PATH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert '<div id="root">' in page.text
    assert SECURITY_HEADERS.items() <= page.headers.items()

    policy = csp_directives(page)
    livekit = settings.frontend_livekit_url  # ws://127.0.0.1:<port> from the test stack
    assert livekit.startswith("ws://")
    assert policy["connect-src"] == ["'self'", livekit, "http://" + livekit.removeprefix("ws://")]
    assert policy["script-src"] == ["'self'"]
    assert policy["media-src"] == ["'self'", "blob:", "mediastream:"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert policy["frame-ancestors"] == ["'none'"]


async def test_the_policy_names_the_public_livekit_url_in_both_schemes(
    endpoints: Endpoints, database_name: str
) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_public_livekit_url="wss://lk.example.com/"
    )
    async with running_app(settings) as (_, api):
        policy = csp_directives(await api.get(CONSOLE_PATH))
    assert policy["connect-src"] == ["'self'", "wss://lk.example.com", "https://lk.example.com"]


async def test_a_page_path_of_the_app_gets_the_index_and_a_missing_file_a_404(
    api: httpx.AsyncClient,
) -> None:
    index = (await api.get(CONSOLE_PATH)).text
    for path in ("agents", "sessions/sess_1", "playground/"):
        answered = await api.get(CONSOLE_PATH + path)
        assert answered.status_code == 200, path
        assert answered.text == index
        assert answered.headers["cache-control"] == "no-cache"
    for path in ("assets/index-missing.js", "favicon.ico", "swagger/missing.css"):
        answered = await api.get(CONSOLE_PATH + path)
        assert answered.status_code == 404, path
        assert answered.headers["content-type"] == "application/problem+json"


async def test_hashed_bundles_are_cached_for_good_with_their_type(api: httpx.AsyncClient) -> None:
    bundles = bundle_paths((await api.get(CONSOLE_PATH)).text)
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    assert {Path(path).suffix for path in bundles} == set(types), bundles
    for path in bundles:
        answered = await api.get(path)
        assert answered.status_code == 200, path
        assert answered.headers["content-type"] == types[Path(path).suffix]
        assert answered.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert SECURITY_HEADERS.items() <= answered.headers.items()
        again = await api.get(path, headers={"If-None-Match": answered.headers["etag"]})
        assert again.status_code == 304


async def test_the_root_and_the_bare_prefix_redirect_to_the_console(api: httpx.AsyncClient) -> None:
    for path in ("/", "/console"):
        answered = await api.get(path)
        assert answered.status_code == 307, path
        assert answered.headers["location"] == CONSOLE_PATH


@pytest.mark.parametrize(
    "path",
    [
        "/console/%2e%2e/%2e%2e/pyproject.toml",
        "/console/..%2f..%2fpyproject.toml",
        "/console/assets/..%2f..%2f..%2fpyproject.toml",
        "/console/..%5c..%5cpyproject.toml",
        "/console/assets/%00.js",
    ],
)
async def test_a_path_out_of_the_build_is_refused(api: httpx.AsyncClient, path: str) -> None:
    answered = await api.get(path)
    assert answered.status_code == 404, answered.text[:200]
    assert "[project]" not in answered.text


async def test_an_absolute_path_stays_inside_the_build(api: httpx.AsyncClient) -> None:
    answered = await api.get("/console/%2fetc%2fpasswd")  # /etc/passwd: a page of the app, at most
    assert answered.text == (await api.get(CONSOLE_PATH)).text


async def test_a_symlink_out_of_the_build_is_not_followed(
    endpoints: Endpoints, database_name: str, tmp_path: Path
) -> None:
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text("<!doctype html><title>console</title>")
    (build / "assets" / "leak.js").symlink_to(REPO_ROOT / "pyproject.toml")
    settings = admin_settings(endpoints, database_name, admin_api_console_dir=build)
    async with running_app(settings) as (_, api):
        assert (await api.get("/console/")).status_code == 200
        leaked = await api.get("/console/assets/leak.js")
    assert leaked.status_code == 404
    assert "[project]" not in leaked.text


async def test_without_a_build_the_console_and_docs_say_how_to_build_it(
    endpoints: Endpoints, database_name: str, tmp_path: Path
) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_console_dir=tmp_path / "not-built"
    )
    async with running_app(settings) as (_, api):
        for path in ("/console/", "/console/agents", "/console/assets/index-abc.js", "/docs"):
            answered = await api.get(path)
            assert answered.status_code == 503, path
            assert answered.headers["content-type"] == "text/html; charset=utf-8"
            assert answered.headers["cache-control"] == "no-store"
            assert "The console is not built" in answered.text
            assert "make console" in answered.text and "npm ci" in answered.text
            assert "Traceback" not in answered.text and str(tmp_path) not in answered.text
        assert (await api.get("/healthz")).status_code == 200  # the API itself works meanwhile


async def test_docs_load_only_files_of_this_origin(api: httpx.AsyncClient) -> None:
    docs = await api.get("/docs")
    assert docs.status_code == 200
    assert "SwaggerUIBundle" in docs.text
    assert re.findall(r"https?://", docs.text) == [], (
        "a URL to another host: /docs would be blank offline"
    )
    assert SECURITY_HEADERS.items() <= docs.headers.items()
    references = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert len(references) == 3, references  # the bundle, its CSS, the favicon
    for reference in references:
        assert reference.startswith("/console/swagger/"), reference
        assert (await api.get(reference)).status_code == 200, reference
    # The one inline script (it starts Swagger UI) runs by its hash; nothing else inline may.
    script_src = csp_directives(docs)["script-src"]
    assert (
        script_src[0] == "'self'" and len(script_src) == 2 and script_src[1].startswith("'sha256-")
    )


async def test_redoc_is_off_and_no_console_route_is_in_the_schema(api: httpx.AsyncClient) -> None:
    assert (await api.get("/redoc")).status_code == 404
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert [path for path in paths if not path.startswith("/api/")] == [
        "/healthz",
        "/readyz",
        "/metrics",
    ]
