"""The web console in a real browser against the real stack.

Debian's Chromium (never a downloaded browser) driven by Playwright, with Chromium's fake
microphone playing a WAV the local TTS spoke. Behind it, as `make dev` runs them: the admin API
as its own HTTP server process serving the built console at /console/, the eval run service
(`python -m evals serve`: it runs what the console's Run button queues), one real worker on the
session's LiveKit server and FerretDB, its agent types answered by the scripted model
(tests/worker/scripted_llm.py: the console shows replies, it does not judge a model's), and a
database seeded with the four built-in agent types and the default routing rules. One stack and
one browser for the whole console suite (starting a worker takes most of a minute); a fresh
browser context per test, so each test starts logged out (the key lives in sessionStorage
only).

Sessions are traced as `make dev TRACES=1` traces them: the worker and the admin API export to
a Jaeger of the run's own (tests/conftest.py: trace_backend), which the admin API reads for the
session page's trace.

Screenshots and the measured numbers go to test-artifacts/console/.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.auth import KeyRing, Role
from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import AgentConfig
from agent_configs.store import ConfigStore
from devstack import REPO_ROOT, Endpoints
from devstack.trace_backend import TraceBackend
from scripts.setup_agents import seed, seed_routing_rules
from tests.console.fake_microphone import write_microphone_wav
from tests.evals.run_service import RunningService, launched_run_service, run_service_env
from tests.worker.conftest import RunningWorker, launched_workers
from tests.worker.scripted_llm import ScriptedLLM

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CONSOLE_DIST = Path(os.environ.get("ADMIN_API_CONSOLE_DIR", REPO_ROOT / "console" / "dist"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "console"
API_START_TIMEOUT_S = 60.0
UI_TIMEOUT_MS = 15_000
"""For the console's own work (a page, an API call): seconds, not the model's minutes."""

SAFE_NAME = re.compile(r"[^\w.-]+")

expect.set_options(timeout=UI_TIMEOUT_MS)


# --- the stack ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def built_console() -> Path:
    if not (CONSOLE_DIST / "index.html").is_file():
        pytest.fail(f"the console is not built in {CONSOLE_DIST}: run `make console`")
    return CONSOLE_DIST


@pytest.fixture(scope="package")
async def console_database(endpoints: Endpoints) -> AsyncIterator[AsyncDatabase]:
    """The four built-in agent types at version 1 and the default routing chain."""
    name = f"console_{uuid.uuid4().hex[:10]}"
    client = open_client(endpoints.mongo_uri)
    database = client[name]
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(ConfigStore(database), configs)
    await seed_routing_rules(database)
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


@dataclass(frozen=True)
class ConsoleKeys:
    admin: str
    viewer: str


@pytest.fixture(scope="package")
async def keys(console_database: AsyncDatabase) -> ConsoleKeys:
    keyring = KeyRing(console_database)
    await keyring.ensure_indexes()
    _, admin = await keyring.create("console-admin", Role.ADMIN)
    _, viewer = await keyring.create("console-viewer", Role.VIEWER)
    return ConsoleKeys(admin=admin, viewer=viewer)


@pytest.fixture(scope="package")
async def console_llm() -> AsyncIterator[ScriptedLLM]:
    """The model every agent type of the console's worker asks (LOCAL_LLM_URL): the scripted
    endpoint. The console shows what a model said; what the embedded one says is not the
    console's to judge, and it can answer blanks (a failed turn, no words, no summary)."""
    async with ScriptedLLM() as endpoint:
        yield endpoint


@pytest.fixture(scope="package")
def console_worker(
    endpoints: Endpoints,
    console_database: AsyncDatabase,
    console_llm: ScriptedLLM,
    trace_backend: TraceBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningWorker]:
    with launched_workers(
        endpoints,
        console_database.name,
        tmp_path_factory,
        prefix="sb-console",
        # An operator who asked for content in spans (SWITCHBOARD_TRACE_CONTENT): the session
        # test reads the turn's words in its trace; tests/worker/test_voice_session.py checks
        # the default, no content at all.
        extra_env={"LOCAL_LLM_URL": console_llm.url, "SWITCHBOARD_TRACE_CONTENT": "true"}
        | trace_backend.otel_env("switchboard-worker"),
    ) as (running,):
        yield running


@pytest.fixture(scope="package")
def eval_run_service(
    endpoints: Endpoints,
    console_database: AsyncDatabase,
    console_worker: RunningWorker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """`python -m evals serve`, as `make dev` runs it: the console's Run button queues a run
    through the admin API and this service runs it on the console's worker."""
    env = run_service_env(endpoints, console_database.name, console_worker.agent_name)
    log_path = tmp_path_factory.mktemp("evals") / "evals.log"
    with launched_run_service(env, log_path) as running:
        yield running


@dataclass
class AdminApiServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_api(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The base URL once uvicorn says where it listens (it picked the port: ADMIN_API_PORT=0)."""
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", text)
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise AssertionError(f"the admin API exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(0.1)
    raise AssertionError(
        f"the admin API did not start in {API_START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}"
    )


@pytest.fixture(scope="package")
def admin_api_server(
    endpoints: Endpoints,
    console_database: AsyncDatabase,
    console_worker: RunningWorker,
    eval_run_service: RunningService,
    built_console: Path,
    trace_backend: TraceBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AdminApiServer]:
    """`python -m admin_api`, as `make dev` runs it, on a free loopback port."""
    log_path = tmp_path_factory.mktemp("admin-api") / "admin-api.log"
    env = (
        os.environ
        | endpoints.as_env()
        | {
            "MONGO_DB": console_database.name,
            "AGENT_NAME": console_worker.agent_name,
            "ADMIN_API_HOST": "127.0.0.1",
            "ADMIN_API_PORT": "0",
            "ADMIN_API_CONSOLE_DIR": str(built_console),
            "SWITCHBOARD_DEV_MODE": "true",
            # A test reads back what it just wrote through the console: no cache in between.
            "ADMIN_API_KEY_CACHE_TTL_S": "0",
            "ADMIN_API_CONFIG_CACHE_TTL_S": "0",
            "ROUTING_RULES_TTL_S": "0",
            "ADMIN_TRACE_QUERY_URL": trace_backend.query_url,
        }
        | trace_backend.otel_env("switchboard-admin-api")
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "admin_api"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield AdminApiServer(wait_for_api(process, log_path), process, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="package")
def console_url(admin_api_server: AdminApiServer) -> str:
    return f"{admin_api_server.base_url}/console/"


@pytest.fixture(scope="package")
async def api(
    admin_api_server: AdminApiServer, keys: ConsoleKeys
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API as a script sees it (admin key): what the console wrote, checked from outside."""
    headers = {"Authorization": f"Bearer {keys.admin}"}
    # Idle connections are dropped after 1 s, before uvicorn closes them (5 s): at httpx's
    # default 5 s a request could reuse the connection the server was closing ("Server
    # disconnected without sending a response", a fresh-clone run's agent editor test).
    async with httpx.AsyncClient(
        base_url=f"{admin_api_server.base_url}/api/v1",
        headers=headers,
        limits=httpx.Limits(keepalive_expiry=1.0),
    ) as client:
        yield client


async def agent_config(api: httpx.AsyncClient, agent_id: str) -> dict[str, Any]:
    response = await api.get(f"/agents/{agent_id}")
    assert response.status_code == 200, response.text
    return response.json()


def built_in_configs() -> dict[str, AgentConfig]:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    return {config.agent_id: config for config in configs}


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="package")
async def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return await write_microphone_wav(tmp_path_factory.mktemp("microphone") / "user.wav")


def chromium_args(microphone: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",  # grants the microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]


@pytest.fixture(scope="package")
async def browser(microphone_wav: Path) -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_args(microphone_wav)
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(
    browser: Browser, admin_api_server: AdminApiServer
) -> AsyncIterator[BrowserContext]:
    """A fresh browser session: no key, no storage (what a newly opened browser has)."""
    fresh = await browser.new_context(
        base_url=admin_api_server.base_url,
        viewport={"width": 1440, "height": 900},
        permissions=["microphone"],
    )
    try:
        yield fresh
    finally:
        await fresh.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    opened = await context.new_page()
    console_messages: list[str] = []
    opened.on("console", lambda message: console_messages.append(f"{message.type}: {message.text}"))
    opened.on(
        "pageerror", lambda error: console_messages.append(f"pageerror: {error.stack or error}")
    )
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and not opened.is_closed():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"failed-{SAFE_NAME.sub('_', request.node.name)}.png"
        await opened.screenshot(path=shot, full_page=True)
        print(f"--- screenshot of the failure: {shot}")
        print("--- browser console ---\n" + "\n".join(console_messages[-40:]))


@pytest.fixture(autouse=True)
def service_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed browser test also shows what the worker and the admin API logged."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    if "console_worker" in request.fixturenames:
        worker: RunningWorker = request.getfixturevalue("console_worker")
        print(f"--- worker log ({worker.log_path}) ---\n{worker.log_tail(80)}")
    if "admin_api_server" in request.fixturenames:
        server: AdminApiServer = request.getfixturevalue("admin_api_server")
        print(f"--- admin API log ({server.log_path}) ---\n{server.log_tail(40)}")
    if "eval_run_service" in request.fixturenames:
        service: RunningService = request.getfixturevalue("eval_run_service")
        print(f"--- eval run service log ({service.log_path}) ---\n{service.log_tail(40)}")


# --- what tests do in the console --------------------------------------------------------


async def log_in(page: Page, console_url: str, key: str, hash_route: str = "") -> None:
    """Open the console, log in with `key`, then go to `hash_route` (e.g. `#/agents`)."""
    await page.goto(console_url)
    await page.get_by_test_id("api-key").fill(key)
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("whoami")).to_be_visible()
    if hash_route:
        await page.goto(console_url + hash_route)


async def save_screenshot(page: Page, name: str) -> Path:
    """test-artifacts/console/<name>.png: the window as a user sees it, scrolled to the top
    (a full-page capture would paint the sticky bars where the page was scrolled to)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=path, animations="disabled", caret="initial")
    return path


@dataclass
class Metrics:
    """What the suite measured, for the issue's closing note: printed and written to
    test-artifacts/console/metrics.json."""

    values: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, value: float, unit: str = "ms") -> None:
        self.values[name] = {"value": round(value, 1), "unit": unit}
        print(f"[console metric] {name}: {value:.1f} {unit}")


@pytest.fixture(scope="package")
def metrics() -> Iterator[Metrics]:
    measured = Metrics()
    yield measured
    if measured.values:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "metrics.json").write_text(json.dumps(measured.values, indent=2) + "\n")


@pytest.fixture(scope="package", autouse=True)
def fresh_artifacts() -> None:
    """Screenshots from an earlier run never pass for this run's."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
