"""Test servers on loopback: an aiohttp app on a free port, for the tests' own fake peers
(tool servers, routing hooks)."""

import pytest
from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """`app` listening on a free port of `host`; stop it with `await runner.cleanup()`.
    A short shutdown timeout: a test's held request must not hold up its teardown."""
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, runner.addresses[0][1]


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def proxy_everything_to(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Every proxy variable, in both cases, names a loopback proxy on `port`, and nothing is
    exempted from it: a client that honours the environment goes there."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
        monkeypatch.setenv(name.lower(), f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
