"""The local stack: real services up, clear errors when they cannot be, `make dev` end to end."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from livekit import api
from rich.console import Console

from agent_configs.database import open_client
from devstack import DEFAULT_ROOT, REPO_ROOT, Devstack, Endpoints
from devstack.__main__ import DEV_PORTS
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


@pytest.mark.services
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


STOP_TIMEOUT_S = 60.0


@dataclass
class MakeDev:
    """`python -m devstack up` (what `make dev` runs) as a background shell starts it."""

    process: subprocess.Popen[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    services: list[psutil.Process] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def until_running(self, timeout: float = 180.0) -> str:
        """Its output up to "Running."; then every process of the stack is known."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "Running. Ctrl-C stops everything." in line:
                self.services = psutil.Process(self.process.pid).children(recursive=True)
                return self.output
        raise AssertionError(f"`devstack up` did not say it was running:\n{self.output}")

    def ports(self) -> list[int]:
        """Every port the stack printed (services, console, admin API, metrics, dispatcher)."""
        found = re.findall(r"(?:http|ws|mongodb)://127\.0\.0\.1:(\d+)", self.output)
        return sorted({int(port) for port in found})

    def stop_with(self, signum: signal.Signals) -> str:
        self.process.send_signal(signum)
        rest, _ = self.process.communicate(timeout=STOP_TIMEOUT_S)
        return rest


@contextmanager
def make_dev(tmp_path: Path) -> Iterator[MakeDev]:
    """The stack on ports of its own choosing (every `DEVSTACK_*_PORT` 0), started the way a
    background shell (CI, `make dev &`) starts it: SIGINT and SIGTERM ignored on the way in.
    Whatever happens in the test, every process of the stack is killed afterwards."""
    env = (
        os.environ
        | {name: "0" for name in DEV_PORTS}
        | {"DEVSTACK_RUN_DIR": str(tmp_path), "MONGO_DB": "make_dev_check", "COLUMNS": "200"}
    )
    env.pop("MONGO_URI", None)
    env.pop("LIVEKIT_URL", None)
    process = subprocess.Popen(
        ["sh", "-c", 'trap "" INT TERM; exec "$@"', "sh", sys.executable, "-m", "devstack", "up"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = MakeDev(process, env)
    try:
        yield running
    finally:
        # The services run in process groups of their own: each group is killed, the ones
        # seen at start (even if `devstack up` is gone) and whatever runs under it now.
        leftovers = [p for p in running.services if alive(p)]
        if process.poll() is None:
            leftovers += psutil.Process(process.pid).children(recursive=True)
        for leftover in leftovers:
            with suppress(psutil.Error, ProcessLookupError):
                os.killpg(leftover.pid, signal.SIGKILL)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        psutil.wait_procs(leftovers, timeout=10)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_stopped(stack: MakeDev, rest: str) -> None:
    assert stack.process.returncode == 0, stack.output + rest
    assert "stopped." in rest
    outlived = [p.pid for p in stack.services if alive(p)]
    assert not outlived, f"processes of the stack outlived it: {outlived}"
    listening = [port for port in stack.ports() if accepts_tcp(port)]
    assert not listening, f"ports still served after the stack stopped: {listening}"


@pytest.mark.services
def test_make_dev_runs_until_interrupted_and_seeds_the_builtins(tmp_path: Path) -> None:
    """What `make dev` runs: services up, addresses printed, four agents seeded, and Ctrl-C
    stops every process of it although it was started with SIGINT ignored (as CI starts it)."""
    with make_dev(tmp_path) as stack:
        output = stack.until_running()
        assert "Created: 4   Already existed: 0" in output, output
        assert "Routing rules: created" in output and "Talk to an agent" in output
        livekit_url = next(
            ln.split("=", 1)[1].strip() for ln in stack.lines if "export LIVEKIT_URL=" in ln
        )
        assert accepts_tcp(int(livekit_url.rsplit(":", 1)[1]))
        # Not one service on a fixed port: the documented defaults are below the kernel's
        # ephemeral range, so none of them can come out of port 0.
        assert not set(stack.ports()) & set(DEV_PORTS.values()), stack.ports()

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

        # The README's next step: chat with an agent through the running worker. What the
        # tiny model answers is not judged: the greeting (the config's words) and the turn
        # the answer was published as (ok, or failed when the model answered only blanks).
        chat = subprocess.run(
            [sys.executable, "-m", "devstack", "chat", "--purpose", "sales"],
            input="Hello, what plans do you offer?\n",
            cwd=REPO_ROOT,
            env=stack.env | {"LIVEKIT_URL": livekit_url},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "routed to sales-agent-v1 by purpose" in chat.stdout, chat.stdout + chat.stderr
        assert "agent:" in chat.stdout and "turn 0: " in chat.stdout, chat.stdout

        # The eval run service runs too (tests/evals runs it; a run here would cost the tiny
        # model's seconds); devstack waited for it to start, and it stops with the rest.
        assert "Eval runs" in output, output
        # And the channels service (tests/channels run it in-process), answering its probe.
        channels_line = next(ln for ln in stack.lines if "Channels" in ln)
        channels_port = re.search(r"127\.0\.0\.1:(\d+)", channels_line)
        assert channels_port, channels_line
        health = httpx.get(f"http://127.0.0.1:{channels_port.group(1)}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["open_conversations"] == 0

        assert_stopped(stack, stack.stop_with(signal.SIGINT))


@pytest.mark.services
def test_make_dev_stops_everything_on_sigterm_although_it_was_ignored_on_the_way_in(
    tmp_path: Path,
) -> None:
    """What `kill`, systemd and a CI runner send; inherited as ignored from a background shell."""
    with make_dev(tmp_path) as stack:
        stack.until_running()
        assert_stopped(stack, stack.stop_with(signal.SIGTERM))


@pytest.mark.services
def test_services_die_with_a_killed_devstack(tmp_path: Path) -> None:
    """SIGKILL leaves `devstack up` no chance to stop anything: the kernel stops its services
    (each was started with a parent-death signal), so no port stays taken by a dead stack."""
    with make_dev(tmp_path) as stack:
        stack.until_running()
        os.kill(stack.process.pid, signal.SIGKILL)
        stack.process.wait()
        _, still = psutil.wait_procs(stack.services, timeout=STOP_TIMEOUT_S)
        assert not [p for p in still if alive(p)], [p.pid for p in still]
        deadline = time.monotonic() + 10  # a port closes with its process; no event for it
        while listening := [port for port in stack.ports() if accepts_tcp(port)]:
            assert time.monotonic() < deadline, f"ports served by a dead stack: {listening}"
            time.sleep(0.1)


def test_reserve_port_zero_picks_a_free_port() -> None:
    port = reserve_port(0, "test", "UNUSED")
    assert 1024 < port < 65536


def test_reserve_port_zero_never_hands_out_the_same_port_twice() -> None:
    """Two services of one stack reserved on port 0 (a worker's health and metrics servers)
    must not be given one port: the kernel may return a closed probe's port again at once."""
    ports = [reserve_port(0, "test", "UNUSED") for _ in range(300)]
    assert len(set(ports)) == len(ports)
