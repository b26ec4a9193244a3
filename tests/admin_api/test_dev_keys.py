"""The admin API refuses LiveKit's published dev keys (devkey/secret): with them anyone can
sign room tokens. SWITCHBOARD_DEV_MODE=true (the devstack, these tests) allows them."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.app import create_app
from admin_api.settings import AdminSettings
from agent_configs.settings import DEV_WEBHOOK_ENCRYPTION_KEY, UnsafeSettings
from devstack import REPO_ROOT, Endpoints
from devstack.services import reserve_port


def api_env(endpoints: Endpoints, database_name: str, port: int) -> dict[str, str]:
    return (
        os.environ
        | endpoints.as_env()
        | {
            "MONGO_DB": database_name,
            "ADMIN_API_PORT": str(port),
            "LIVEKIT_API_KEY": "devkey",
            "LIVEKIT_API_SECRET": "secret",
        }
    )


def test_the_admin_api_refuses_to_start_on_the_dev_livekit_keys_without_dev_mode(
    endpoints: Endpoints, database_name: str
) -> None:
    env = api_env(endpoints, database_name, reserve_port(0, "admin API", "ADMIN_API_PORT"))
    env.pop("SWITCHBOARD_DEV_MODE", None)  # what a production deployment sets: nothing
    # Refused before uvicorn binds, so it exits by itself; the timeout only bounds a bug.
    finished = subprocess.run(
        [sys.executable, "-m", "admin_api"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert (
        "LIVEKIT_API_KEY" in finished.stderr and "SWITCHBOARD_DEV_MODE=true" in finished.stderr
    ), finished.stderr
    assert "Traceback" not in finished.stderr, "a refusal is one clear line, not a crash"


def test_an_app_built_in_process_refuses_the_dev_livekit_secret_too(endpoints: Endpoints) -> None:
    """`uvicorn --factory admin_api.app:create_app` and embedding apps go through create_app."""
    settings = AdminSettings(
        _env_file=None,
        mongo_uri=endpoints.mongo_uri,
        livekit_api_key="APIreal",
        livekit_api_secret="secret",
    )
    with pytest.raises(UnsafeSettings, match="LIVEKIT_API_SECRET"):
        create_app(settings)


def test_the_published_dev_webhook_encryption_key_is_refused_without_dev_mode(
    endpoints: Endpoints,
) -> None:
    """make dev's Fernet key is in the source: secrets encrypted under it are anyone's."""
    settings = AdminSettings(
        _env_file=None,
        mongo_uri=endpoints.mongo_uri,
        livekit_api_key="APIreal",
        livekit_api_secret="a-real-secret",
        webhook_encryption_key=f"{Fernet.generate_key().decode()},{DEV_WEBHOOK_ENCRYPTION_KEY}",
    )
    with pytest.raises(UnsafeSettings, match="WEBHOOK_ENCRYPTION_KEY"):
        create_app(settings)


def test_with_dev_mode_asked_for_the_admin_api_serves_on_the_dev_livekit_keys(
    endpoints: Endpoints, database: AsyncDatabase, tmp_path: Path
) -> None:
    port = reserve_port(0, "admin API", "ADMIN_API_PORT")
    env = api_env(endpoints, database.name, port) | {"SWITCHBOARD_DEV_MODE": "true"}
    log_path = tmp_path / "admin-api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "admin_api"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        status = None
        while status != 200 and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/readyz", timeout=2
                ) as response:
                    status = response.status
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)  # not listening yet: poll again
        assert process.poll() is None, log_path.read_text(errors="replace")[-2000:]
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_app_with_its_own_livekit_keys_needs_no_dev_mode(endpoints: Endpoints) -> None:
    settings = AdminSettings(
        _env_file=None,
        mongo_uri=endpoints.mongo_uri,
        livekit_api_key="APIreal",
        livekit_api_secret="a-real-secret",
    )
    assert settings.switchboard_dev_mode is False
    create_app(settings)  # no UnsafeSettings
