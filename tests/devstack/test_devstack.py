"""The local stack: real services up, clear errors when they cannot be, `make dev` end to end."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from livekit import api
from rich.console import Console

from agent_configs.database import open_client
from devstack import DEFAULT_ROOT, REPO_ROOT, Devstack, Endpoints
from devstack.binaries import GoBinary, ensure_built
from devstack.errors import GoToolchainMissing, PortInUse
from devstack.services import accepts_tcp, reserve_port


async def test_livekit_server_accepts_our_dev_keys(endpoints: Endpoints) -> None:
    url = endpoints.livekit_url.replace("ws://", "http://")
    async with api.LiveKitAPI(url, endpoints.livekit_api_key, endpoints.livekit_api_secret) as lk:
        room = await lk.room.create_room(api.CreateRoomRequest(name="devstack-check"))
        listed = await lk.room.list_rooms(api.ListRoomsRequest(names=["devstack-check"]))
        assert [r.name for r in listed.rooms] == [room.name]
        await lk.room.delete_room(api.DeleteRoomRequest(room="devstack-check"))


async def test_ferretdb_answers_on_the_mongo_wire(endpoints: Endpoints) -> None:
    client = open_client(endpoints.mongo_uri)
    try:
        assert (await client.admin.command("ping"))["ok"] == 1.0
    finally:
        await client.close()


def test_taken_port_is_a_clear_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        mongo_port = reserve_port(0, "test", "UNUSED")
        stack = Devstack(
            DEFAULT_ROOT, run_dir=tmp_path, mongo_port=mongo_port, livekit_port=taken, environ={}
        )
        with pytest.raises(PortInUse) as caught:
            with stack:
                pass
    message = str(caught.value)
    assert f"port {taken} for LiveKit server is already in use" in message
    assert "DEVSTACK_LIVEKIT_PORT" in message
    assert (tmp_path / "logs" / "ferretdb.log").exists(), "FerretDB should have started first"
    assert not accepts_tcp(mongo_port), "FerretDB left running after the failed start"


def test_missing_go_says_what_to_install_or_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    never_built = GoBinary(name="never-built", package="example.com/never", version="v0.0.1")
    with pytest.raises(GoToolchainMissing) as caught:
        ensure_built(never_built, tmp_path / "bin", Console())
    assert "go.dev/dl" in str(caught.value) and "MONGO_URI" in str(caught.value)


def test_services_from_the_environment_are_used_not_started(tmp_path: Path) -> None:
    given = {
        "MONGO_URI": "mongodb://db.internal:27017/",
        "LIVEKIT_URL": "wss://example.livekit.cloud",
        "LIVEKIT_API_KEY": "APIkey",
        "LIVEKIT_API_SECRET": "from-env",
        "LOCAL_LLM_URL": "http://llm.internal:8080/v1",
    }
    with Devstack(tmp_path / "no-builds-here", environ=given) as endpoints:
        assert endpoints.started == []
        assert endpoints.as_env() == given
    assert not (tmp_path / "no-builds-here").exists()


def test_make_dev_runs_until_interrupted_and_seeds_the_builtins(tmp_path: Path) -> None:
    """What `make dev` runs: services up, addresses printed, four agents seeded, clean stop."""
    env = os.environ | {
        "DEVSTACK_RUN_DIR": str(tmp_path),
        "DEVSTACK_MONGO_PORT": "0",
        "DEVSTACK_LIVEKIT_PORT": "0",
        "DEVSTACK_LLM_PORT": "0",
        "DEVSTACK_WORKER_PORT": "0",
        "DEVSTACK_METRICS_PORT": "0",
        "DEVSTACK_ADMIN_API_PORT": "0",
        "MONGO_DB": "make_dev_check",
        "COLUMNS": "200",
    }
    env.pop("MONGO_URI", None)
    env.pop("LIVEKIT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Running. Ctrl-C stops everything." in line:
                break
        output = "".join(lines)
        assert "Created: 4   Already existed: 0" in output, output
        livekit_url = next(
            ln.split("=", 1)[1].strip() for ln in lines if "export LIVEKIT_URL=" in ln
        )
        port = int(livekit_url.rsplit(":", 1)[1])
        assert accepts_tcp(port)
        assert "Routing rules: created" in output and "Talk to an agent" in output

        # The admin API runs too, with the documented dev key.
        docs = re.search(r"http://127\.0\.0\.1:(\d+)/docs", output)
        assert docs, output
        listed = httpx.get(
            f"http://127.0.0.1:{docs.group(1)}/api/v1/agents",
            headers={"Authorization": "Bearer dev-admin-key"},
            timeout=10,
        )
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 4

        # The README's next step: chat with an agent through the running worker.
        chat = subprocess.run(
            [sys.executable, "-m", "devstack", "chat", "--purpose", "sales"],
            input="Hello, what plans do you offer?\n",
            cwd=REPO_ROOT,
            env=env | {"LIVEKIT_URL": livekit_url},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "routed to sales-agent-v1 by purpose" in chat.stdout, chat.stdout + chat.stderr
        assert chat.stdout.count("agent:") >= 2, chat.stdout  # greeting and the answer
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "stopped." in rest
    assert not accepts_tcp(port), "LiveKit server still running after Ctrl-C"


def test_reserve_port_zero_picks_a_free_port() -> None:
    port = reserve_port(0, "test", "UNUSED")
    assert 1024 < port < 65536
