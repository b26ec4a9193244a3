"""The worker refuses LiveKit's published dev keys (devkey/secret) unless dev mode is asked for
with SWITCHBOARD_DEV_MODE=true, as the devstack and these tests do."""

import subprocess
import sys
from pathlib import Path

import pytest

from devstack import REPO_ROOT, Endpoints
from tests.worker.conftest import RunningWorker, worker_env


def test_the_worker_refuses_to_start_on_the_dev_livekit_keys_without_dev_mode(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    env = worker_env(endpoints, "never_written", "sb-devkeys", tmp_path) | {
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
    }
    env.pop("SWITCHBOARD_DEV_MODE", None)  # what a production deployment sets: nothing
    # Refused before it connects anywhere, so it exits by itself; the timeout only bounds a bug.
    finished = subprocess.run(
        [sys.executable, "-m", "worker", "start"],
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
    assert "registered worker" not in finished.stdout + finished.stderr


def test_with_dev_mode_asked_for_the_worker_starts_on_the_dev_livekit_keys(
    endpoints: Endpoints, worker: RunningWorker
) -> None:
    if not endpoints.uses_dev_keys:
        pytest.skip("LIVEKIT_URL given with its own keys: dev mode is not needed there")
    assert worker.env["SWITCHBOARD_DEV_MODE"] == "true"
    assert (worker.env["LIVEKIT_API_KEY"], worker.env["LIVEKIT_API_SECRET"]) == ("devkey", "secret")
    # The fixture returned once the worker registered with LiveKit; it is still serving.
    assert worker.process.poll() is None
    assert "registered worker" in worker.log_path.read_text(errors="replace")
