"""`python -m evals serve` as a process of a test's stack (tests/evals, tests/console): started
against the test's database and worker, stopped with SIGTERM (SIGKILL to its group past a
timeout) whatever the test did."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack import REPO_ROOT, Endpoints
from evals.service import STARTED

START_TIMEOUT_S = 60.0


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def run_service_env(
    endpoints: Endpoints, database_name: str, agent_name: str, **extra: str
) -> dict[str, str]:
    """What `make dev` gives it (the stack's MONGO_*, LIVEKIT_*, AGENT_NAME), looking for runs
    every 0.1 s so a test's run starts at once."""
    return (
        dict(os.environ)
        | endpoints.as_env()
        | {
            "MONGO_DB": database_name,
            "AGENT_NAME": agent_name,
            "MONGO_TIMEOUT_MS": "2000",
            "EVALS_POLL_INTERVAL_S": "0.1",
        }
        | extra
    )


def stop_service(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextmanager
def launched_run_service(env: dict[str, str], log_path: Path) -> Iterator[RunningService]:
    """Yields once the service has its claim index and looks for runs."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "evals", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while STARTED not in log_path.read_text(errors="replace"):
            if process.poll() is not None:
                raise AssertionError(
                    f"the run service exited with {process.returncode}:\n{log_path.read_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"the run service did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield RunningService(process, log_path)
    finally:
        stop_service(process)
