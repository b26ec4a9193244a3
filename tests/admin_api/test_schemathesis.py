"""Schemathesis against the app's own OpenAPI: the real server (`python -m admin_api`, uvicorn)
on the real FerretDB, seeded with the built-in agent types, fuzzed with valid and invalid
requests. Passing means no 5xx, every status code / content type / header documented, every
body conforming to its schema, and schema-violating requests refused.

Bounded: about 300 generated requests with a fixed seed (a run takes well under a minute).
"""

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import schemathesis  # noqa: F401  (in the dev extra: a missing install must fail, not skip)
from pymongo import MongoClient

from devstack import REPO_ROOT, Endpoints
from devstack.services import reserve_port
from devstack.trace_backend import TraceBackend

ADMIN_KEY = "schemathesis-admin-key-0123456789"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
EXAMPLES_PER_OPERATION = 12
SEED = 20250101


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"admin API exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"admin API not ready at {url} after {timeout_s}s")


@pytest.fixture(scope="module")
def served_api(
    endpoints: Endpoints, trace_backend: TraceBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The admin API as deployed with tracing: reading a real Jaeger, so the trace route
    answers as it does there (404 for a session it does not know) rather than 503."""
    database_name = f"st_{uuid.uuid4().hex[:10]}"
    port = reserve_port(0, "admin API", "ADMIN_API_PORT")
    env = (
        os.environ
        | endpoints.as_env()
        | {
            "MONGO_DB": database_name,
            "ADMIN_API_PORT": str(port),
            "ADMIN_API_BOOTSTRAP_KEY": ADMIN_KEY,
            "ADMIN_API_TOKEN_RATE_PER_S": "10000",
            "ADMIN_API_TOKEN_BURST": "10000",
            "ADMIN_TRACE_QUERY_URL": trace_backend.query_url,
        }
    )
    seeded = subprocess.run(
        [sys.executable, "scripts/setup_agents.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    log_path = tmp_path_factory.mktemp("admin-api") / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "admin_api"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        client: MongoClient = MongoClient(endpoints.mongo_uri)
        client.drop_database(database_name)
        client.close()
        assert "Traceback" not in log_path.read_text(errors="replace"), log_path.read_text()[-4000:]


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_server_error_and_responses_conform(served_api: str) -> None:
    command = [
        str(os.path.join(os.path.dirname(sys.executable), "st")),
        "run",
        f"{served_api}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=200)
    report = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report
    generated, passed = map(int, counts.groups())
    assert 100 <= generated <= 600 and passed == generated, report
