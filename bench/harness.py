"""What the benchmarks share: the real stack with both workers, a timed frontend, memory
sampling, statistics and the results file.

`BenchStack` starts the devstack (LiveKit server, FerretDB, local LLM, or with
`llm="simulated"` the simulated model of bench/simulated_llm.py instead) in a temporary run
directory, seeds a fresh database the way `make seed` does (built-in agent types + routing
rules), makes the agent types text-only (as tests/worker/conftest.py `text_only_agents` does),
then runs two workers side by side on the same LiveKit server:

- `switchboard`: `python -m worker start`, agent name `bench-sb-…`;
- `bare`: `python -m bench.bare_worker start`, agent name `bench-bare-…`, fed the support
  agent type's instructions, greeting and sampling so both send the LLM the same prompt.

Everything is real and bounded: every wait has a deadline, every process is stopped by its id.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from livekit import api, rtc

from bench.simulated_llm import SimulatedLLMProcess, start_simulated_llm
from devstack import DEFAULT_ROOT, Devstack, Endpoints
from devstack.services import reserve_port

if TYPE_CHECKING:
    from agent_configs.routing.rules import RulesStore
    from devstack.rabbitmq_server import RabbitMQNode

RESULTS_DIR = REPO_ROOT / "bench" / "results"
REGISTER_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0
SUPPORT_AGENT = "support-agent-v1"
SIMULATED_MODEL = "simulated"
"""The model name every type asks the simulated endpoint for (`BenchStack(llm="simulated")`)."""
SAME_WORK_AGENT = "support-same-llm-work"
"""The support type with the bare worker's LLM work: no turn fields, no summary (seeded by
`seed_database`, which lets metadata name it), so a comparison with it is about the platform,
not about the LLM."""

try:
    import psutil
except ImportError:  # the /proc fallback below does the same, a little slower
    psutil = None


# -- numbers -----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "mean": statistics.fmean(values) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def ratio(ours: float | None, bare: float | None) -> float | None:
    if ours is None or bare is None or bare == 0:
        return None
    return ours / bare


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(f"\n{title}")
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def machine_info() -> dict[str, Any]:
    total_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory_mb": total_mb,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "git_head": _git_head(),
        "code_under_test": code_fingerprint(),
    }


def code_fingerprint() -> dict[str, Any]:
    """Which worker code ran: HEAD plus a hash of worker/ and agent_configs/ as they are on
    disk, and which of their files differ from HEAD (the tree is edited while benches run)."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("worker", "agent_configs"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    try:
        dirty = subprocess.run(
            ["git", "status", "--short", "--", "worker", "agent_configs"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        dirty = []
    return {
        "sha256": digest.hexdigest()[:16],
        "changed_vs_head": [line.strip() for line in dirty if line.strip()],
    }


def _git_head() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy CPU time and the part of it this bench's process tree used."""

    at: float
    busy_s: float
    ours_s: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            busy = (
                values[0]
                + values[1]
                + values[2]
                + values[5]
                + values[6]
                + (values[7] if len(values) > 7 else 0)
            ) / ticks
        except (OSError, ValueError, IndexError):
            busy = 0.0
        ours = 0
        for pid in [os.getpid(), *_children_proc(os.getpid())]:
            fields = _stat_fields(pid)
            if fields:  # utime, stime and the times of reaped children (ended job processes)
                ours += sum(int(v) for v in fields[11:15])
        return cls(time.time(), busy, ours / ticks)

    def others_cores(self, later: CpuSnapshot) -> float | None:
        """Cores used on average by processes outside this bench (other users) in between."""
        elapsed = later.at - self.at
        if elapsed <= 0:
            return None
        return max(0.0, (later.busy_s - self.busy_s) - (later.ours_s - self.ours_s)) / elapsed

    def ours_cores(self, later: CpuSnapshot) -> float | None:
        elapsed = later.at - self.at
        return (later.ours_s - self.ours_s) / elapsed if elapsed > 0 else None


class LoadWatch:
    """The 1-minute load average, sampled every few seconds while the bench runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="loadwatch")

    def __enter__(self) -> Self:
        self.cpu_start = CpuSnapshot.take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_end = CpuSnapshot.take()
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(5.0)

    def report(self) -> dict[str, float | None]:
        end = getattr(self, "cpu_end", None) or CpuSnapshot.take()
        return {
            "load1_min": min(self.samples, default=None),
            "load1_max": max(self.samples, default=None),
            "load1_mean": statistics.fmean(self.samples) if self.samples else None,
            "cores_used_by_bench": self.cpu_start.ours_cores(end),
            "cores_used_by_others": self.cpu_start.others_cores(end),
        }

    def describe(self, cpus: int) -> str:
        r = self.report()
        return (
            f"load average (1 min) {fmt(r['load1_min'], digits=2)}..{fmt(r['load1_max'], digits=2)} "
            f"(mean {fmt(r['load1_mean'], digits=2)}) on {cpus} CPUs; CPU used by this bench's processes "
            f"{fmt(r['cores_used_by_bench'], digits=2)} cores, by other processes on the machine "
            f"{fmt(r['cores_used_by_others'], digits=2)} cores (averages over the run)"
        )


# -- process memory ----------------------------------------------------------------------


def _children_proc(pid: int) -> list[int]:
    """Descendants of `pid` from /proc (when psutil is missing)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rss_pss_proc(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


@dataclass
class TreeMemory:
    rss: int
    pss: int
    processes: int


def tree_memory(pid: int) -> TreeMemory:
    """RSS and PSS summed over a process and all its descendants (job processes, forkserver).

    RSS counts pages shared between forked job processes once per process; PSS splits them,
    so it is the fairer "what does one more session cost" figure. Both are reported.
    """
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return TreeMemory(0, 0, 0)
        rss = pss = 0
        for process in processes:
            try:
                info = process.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            except psutil.Error:
                continue
        return TreeMemory(rss, pss, len(processes))
    pids = [pid, *_children_proc(pid)]
    totals = [_rss_pss_proc(p) for p in pids]
    return TreeMemory(sum(r for r, _ in totals), sum(p for _, p in totals), len(pids))


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """pid -> CPU seconds (user + system) so far, for a process and its descendants."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        seconds = {}
        for process in processes:
            try:
                times = process.cpu_times()
                seconds[process.pid] = times.user + times.system
            except psutil.Error:
                continue
        return seconds
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for child in [pid, *_children_proc(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[child] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return seconds


def process_roles(pid: int) -> list[dict[str, Any]]:
    """Each process of a worker tree with its role and memory: the main process, the
    multiprocessing forkserver (a child of main), and job processes (its children, idle or
    running a job)."""
    children = _children_proc(pid) if psutil is None else [c.pid for c in _psutil_children(pid)]
    parent_of = {}
    for child in children:
        try:
            parent_of[child] = int(
                Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]
            )
        except (OSError, ValueError, IndexError):
            continue
    rows = []
    for child in [pid, *children]:
        try:
            command = (
                Path(f"/proc/{child}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if child == pid:
            role = "main"
        elif parent_of.get(child) == pid and "forkserver" in command:
            role = "forkserver"
        elif "resource_tracker" in command:
            role = "resource tracker"
        else:
            role = "job process"
        rss, pss = _rss_pss_proc(child)
        rows.append({"pid": child, "role": role, "rss_mb": rss / 1048576, "pss_mb": pss / 1048576})
    return rows


def _psutil_children(pid: int) -> list[Any]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class MemorySampler:
    """Samples the memory of some worker trees in a thread until stopped."""

    def __init__(self, pids: dict[str, int], interval_s: float = 1.0) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: dict[str, list[tuple[float, TreeMemory]]] = {name: [] for name in pids}
        self._cpu: dict[str, dict[int, list[float]]] = {name: {} for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memsampler")

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.samples[name].append((time.time(), tree_memory(pid)))
                for child, seconds in tree_cpu_seconds(pid).items():
                    self._cpu[name].setdefault(child, [seconds, seconds])[1] = seconds
            self._stop.wait(self.interval_s)

    def cpu_seconds(self, name: str) -> float:
        """CPU (user + system) the tree used while sampled; a process shorter than one
        sampling interval is missed, a job process never is."""
        return sum(last - first for first, last in self._cpu[name].values())

    def peak(self, name: str) -> TreeMemory | None:
        samples = [m for _, m in self.samples[name]]
        if not samples:
            return None
        return TreeMemory(
            max(m.rss for m in samples),
            max(m.pss for m in samples),
            max(m.processes for m in samples),
        )


# -- workers -----------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    kind: str  # "switchboard" | "bare"
    agent_name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int

    def active_jobs(self) -> int | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/worker", timeout=2
            ) as response:
                return int(json.loads(response.read()).get("active_jobs", 0))
        except (OSError, ValueError):
            return None

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def log_tail(self, lines: int = 40) -> str:
        noise = ("InsecureKeyLengthWarning", "_jws.encode")
        kept = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if not any(n in line for n in noise)
        ]
        return "\n".join(line[:400] for line in kept[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(
                self.process.pid, signal.SIGKILL
            )  # its own session: started with start_new_session
            self.process.wait(10)


def _start_worker(
    kind: str, command: list[str], env: dict[str, str], log_path: Path, agent_name: str
) -> WorkerProcess:
    port = reserve_port(0, f"{kind} worker health", "UNUSED")
    env = env | {"WORKER_HTTP_PORT": str(port)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(kind, agent_name, process, log_path, port)


def _wait_registered(worker: WorkerProcess) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        if "registered worker" in worker.log_path.read_text(errors="replace"):
            return
        if worker.process.poll() is not None:
            raise RuntimeError(
                f"{worker.kind} worker exited with {worker.process.returncode}:\n{worker.log_tail()}"
            )
        time.sleep(0.2)
    raise RuntimeError(
        f"{worker.kind} worker did not register in {REGISTER_TIMEOUT_S:.0f}s:\n{worker.log_tail()}"
    )


async def seed_database(
    mongo_uri: str,
    database_name: str,
    llm_overrides: dict[str, Any] | None = None,
    voice_agents: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Built-in agent types + routing rules, as `make seed`; then text-only, as the tests do,
    except `voice_agents`, which keep their voice and text as shipped; with `llm_overrides`
    (e.g. temperature, max_tokens) applied to every type's LLM.

    Returns the support agent type (instructions, greeting, sampling) for the bare worker.
    """
    from agent_configs.database import open_client
    from agent_configs.files import DEFAULTS_DIR, load_config_dir
    from agent_configs.routing.rules import RulesStore
    from agent_configs.store import ConfigStore
    from scripts.setup_agents import seed, seed_routing_rules

    client = open_client(mongo_uri)
    try:
        database = client[database_name]
        store = ConfigStore(database)
        configs, errors = load_config_dir(DEFAULTS_DIR)
        if errors:
            raise RuntimeError(f"built-in agent types are invalid: {errors}")
        await seed(store, configs)
        await seed_routing_rules(database)
        for config in (await store.list_agents()).items:
            changes: dict[str, Any] = (
                {}
                if config.agent_id in voice_agents
                else {"modalities": ["text"], "stt": None, "tts": None, "vad": None}
            )
            if llm_overrides:
                changes["llm"] = config.llm.model_copy(update=llm_overrides)
            text_only = config.model_copy(update=changes)
            await store.update(text_only, expected_version=config.version)
        support = await store.get(SUPPORT_AGENT)
        reply_only = support.turn_schema.model_copy(
            update={"schema_id": "support_reply_only", "fields": []}
        )
        await store.create(
            support.model_copy(
                update={
                    "agent_id": SAME_WORK_AGENT,
                    "purposes": [],
                    "intents": [],
                    "turn_schema": reply_only,
                    "summary": support.summary.model_copy(update={"enabled": False}),
                    "memory": support.memory.model_copy(update={"enabled": False}),
                }
            )
        )
        await allow_explicitly(RulesStore(database), SAME_WORK_AGENT)
        return {
            "greeting": support.greeting,
            "instructions": support.instructions,
            "model": support.llm.model,
            "temperature": support.llm.temperature,
            "max_tokens": support.llm.max_tokens,
        }
    finally:
        await client.close()


async def allow_explicitly(rules: RulesStore, agent_id: str) -> None:
    """The built-in chain lets metadata name only the built-in types (`explicit`'s
    `allowed_agent_ids`): a copy left out of it is routed by its `purpose` instead, to the
    type it copies. The same-LLM-work phase was served by the support type that way from the
    day the list came in: one message cost two requests (the reply with the fields' schema,
    its cap raised from 32 to 133 tokens, and a summary capped at 160) where the bare worker
    made one capped at 32 (tests/worker/test_same_llm_work.py)."""
    current = await rules.current()
    chain = []
    for entry in current.chain:
        if entry.strategy == "explicit":
            allowed = [*entry.params.get("allowed_agent_ids", []), agent_id]
            entry = entry.model_copy(
                update={"params": entry.params | {"allowed_agent_ids": allowed}}
            )
        chain.append(entry)
    await rules.save(current.model_copy(update={"chain": chain}), expected_version=current.version)


async def drop_database(mongo_uri: str, database_name: str) -> None:
    from agent_configs.database import open_client

    client = open_client(mongo_uri)
    try:
        await client.drop_database(database_name)
    finally:
        await client.close()


@dataclass
class BenchStack:
    """The devstack plus both workers, for one benchmark run."""

    max_sessions: int = 32
    llm_overrides: dict[str, Any] = field(default_factory=dict)
    voice: bool = False
    """The support type keeps its voice (local STT, TTS, VAD) and the bare worker runs with
    `BARE_VOICE=1`: the same STT, TTS and VAD (bench/voice_latency.py)."""
    run_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    )
    endpoints: Endpoints | None = None
    database_name: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:10]}")
    support: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    llm: Literal["local", "simulated"] = "local"
    """`local`: the embedded llama.cpp model. `simulated`: bench/simulated_llm.py in a process
    of its own (no llama.cpp is started), every seeded type's LLM an OpenAI-compatible model
    at its URL (model `SIMULATED_MODEL`) and the bare worker's `LOCAL_LLM_URL` too."""
    simulated_ttft_ms: float = 300.0
    simulated_tokens_per_s: float = 50.0
    simulator: SimulatedLLMProcess | None = None
    bare: bool = True
    """Start the bare worker too; a bench that only measures Switchboard's side (the channel
    benches) leaves it out."""
    _devstack: Devstack | None = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        simulated = self.llm == "simulated"
        self._devstack = Devstack(
            DEFAULT_ROOT, run_dir=self.run_dir, llm_port=None if simulated else 0
        )
        self.endpoints = self._devstack.start()
        if simulated:
            self._start_simulator()
        if not self.endpoints.local_llm_url:
            raise RuntimeError("the local model stack is not installed: run `make test` once")
        self.support = asyncio.run(
            seed_database(
                self.endpoints.mongo_uri,
                self.database_name,
                self.llm_overrides,
                voice_agents=(SUPPORT_AGENT,) if self.voice else (),
            )
        )
        common = (
            os.environ | self.endpoints.as_env() | {"WORKER_MAX_SESSIONS": str(self.max_sessions)}
        )
        tag = uuid.uuid4().hex[:6]
        sb_name, bare_name = f"bench-sb-{tag}", f"bench-bare-{tag}"
        self.workers["switchboard"] = _start_worker(
            "switchboard",
            [sys.executable, "-m", "worker", "start"],
            common
            | {
                "MONGO_DB": self.database_name,
                "AGENT_NAME": sb_name,
                "PROMETHEUS_PORT": str(reserve_port(0, "metrics", "UNUSED")),
                "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics"),
                "SPOOL_DIR": str(self.run_dir / "spool"),
            },
            self.run_dir / "logs" / "worker-switchboard.log",
            sb_name,
        )
        if not self.bare:
            _wait_registered(self.workers["switchboard"])
            return
        self.workers["bare"] = _start_worker(
            "bare",
            [sys.executable, "-m", "bench.bare_worker", "start"],
            common
            | {
                "AGENT_NAME": bare_name,
                "BARE_GREETING": self.support["greeting"] or "Hello!",
                "BARE_INSTRUCTIONS": self.support["instructions"],
                "BARE_LLM_MODEL": self.support["model"],
                "BARE_TEMPERATURE": str(self.support["temperature"]),
                "BARE_MAX_TOKENS": str(self.support["max_tokens"] or 256),
                "BARE_VOICE": "1" if self.voice else "",
            },
            self.run_dir / "logs" / "worker-bare.log",
            bare_name,
        )
        for worker in self.workers.values():
            _wait_registered(worker)

    def start_rabbitmq(self) -> RabbitMQNode:
        """A private RabbitMQ node (devstack/rabbitmq_server.py), stopped with the stack."""
        assert self._devstack is not None
        return self._devstack.start_rabbitmq()

    def _start_simulator(self) -> None:
        """The simulated model, and every seeded type asking it as a cloud model is asked
        (provider `openai`, its own `base_url`, no key: the egress policy allows loopback),
        so Switchboard calls it with OpenAI's semantics, tools and schema in one request."""
        assert self.endpoints is not None
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.simulator = start_simulated_llm(
            self.simulated_ttft_ms,
            self.simulated_tokens_per_s,
            self.run_dir / "logs" / "simulated-llm.log",
        )
        self.endpoints.local_llm_url = self.simulator.base_url
        self.llm_overrides = self.llm_overrides | {
            "provider": "openai",
            "model": SIMULATED_MODEL,
            "base_url": self.simulator.base_url,
            "api_key_env": None,
        }

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.simulator is not None:
            self.simulator.stop()
        if self.endpoints is not None:
            try:
                asyncio.run(drop_database(self.endpoints.mongo_uri, self.database_name))
            except Exception as exc:
                print(f"(could not drop {self.database_name}: {exc})", file=sys.stderr)
        if self._devstack is not None:
            self._devstack.stop()

    # -- quiet between measurements ------------------------------------------------------

    def _simulator_stats(self) -> dict[str, Any] | None:
        assert self.simulator is not None
        try:
            return self.simulator.stats()
        except (OSError, ValueError):
            return None

    def llm_busy(self) -> int | None:
        """Requests the LLM server is working on (llama.cpp /metrics, the simulator's
        `in_flight`), None if unknown."""
        if self.simulator is not None:
            stats = self._simulator_stats()
            return None if stats is None else int(stats["in_flight"])
        assert self.endpoints and self.endpoints.local_llm_url
        root = self.endpoints.local_llm_url.removesuffix("/v1")
        try:
            with urllib.request.urlopen(f"{root}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        busy = 0.0
        for line in text.splitlines():
            if line.startswith(("llamacpp:requests_processing", "llamacpp:requests_deferred")):
                busy += float(line.split()[-1])
        return int(busy)

    def llm_counters(self) -> dict[str, float]:
        """llama.cpp's cumulative token counters (prompt tokens evaluated, tokens generated);
        the simulator's under the same names (`prompt_tokens_total`, `tokens_predicted_total`)."""
        if self.simulator is not None:
            stats = self._simulator_stats() or {}
            return {
                "prompt_tokens_total": float(stats.get("prompt_tokens", 0)),
                "tokens_predicted_total": float(stats.get("completion_tokens", 0)),
            }
        assert self.endpoints and self.endpoints.local_llm_url
        root = self.endpoints.local_llm_url.removesuffix("/v1")
        counters: dict[str, float] = {}
        try:
            with urllib.request.urlopen(f"{root}/metrics", timeout=2) as response:
                for line in response.read().decode().splitlines():
                    if line.startswith(
                        (
                            "llamacpp:prompt_tokens_total",
                            "llamacpp:tokens_predicted_total",
                            "llamacpp:n_decode_total",
                        )
                    ):
                        name, value = line.split()[:2]
                        counters[name.removeprefix("llamacpp:")] = float(value)
        except (OSError, ValueError):
            pass
        return counters

    def llm_log_requests(self, offset: int) -> tuple[int, int]:
        """Requests llama.cpp started since byte `offset` of its log; (count, new offset).
        With the simulator, `offset` is its request counter (0 at the start)."""
        if self.simulator is not None:
            requests = int((self._simulator_stats() or {}).get("requests", offset))
            return requests - offset, requests
        path = self.run_dir / "logs" / "local-llm.log"
        try:
            with path.open("rb") as log:
                log.seek(offset)
                text = log.read()
        except OSError:
            return 0, offset
        return text.count(b"launch_slot_"), offset + len(text)

    def wait_quiet(self, timeout_s: float = 120.0, settle_s: float = 1.0) -> dict[str, Any]:
        """Until no worker runs a job and the LLM is idle (bounded); says how long it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            jobs = {name: w.active_jobs() for name, w in self.workers.items()}
            busy = self.llm_busy()
            if all(j == 0 for j in jobs.values()) and busy in (0, None):
                time.sleep(settle_s)
                return {"quiet_after_s": round(time.monotonic() - started, 2), "timed_out": False}
            time.sleep(0.25)
        return {
            "quiet_after_s": round(time.monotonic() - started, 2),
            "timed_out": True,
            "jobs": jobs,
            "llm_busy": busy,
        }

    def client(
        self, kind: str, metadata: dict[str, Any], identity: str = "bench-user"
    ) -> TimedClient:
        assert self.endpoints
        return TimedClient(self.endpoints, self.workers[kind].agent_name, metadata, identity)


# -- a timed frontend --------------------------------------------------------------------


@dataclass
class Transcript:
    opened_at: float  # time.time() when the text stream's header arrived
    done_at: float  # when the whole text had arrived
    text: str


class TimedClient:
    """One participant in one fresh room that explicitly dispatches `agent_name`, as a
    frontend does (metadata on the participant and in the dispatch); timestamps everything."""

    def __init__(
        self, endpoints: Endpoints, agent_name: str, metadata: dict[str, Any], identity: str
    ) -> None:
        self.endpoints = endpoints
        self.agent_name = agent_name
        self.metadata = json.dumps(metadata)
        self.identity = identity
        self.room = rtc.Room()
        self.room_name = f"bench-{uuid.uuid4().hex[:12]}"
        self.transcripts: list[Transcript] = []
        self.join_started_at: float | None = None
        self.connected_at: float | None = None
        self.agent_joined_at: float | None = None
        self._changed = asyncio.Event()

    def _token(self) -> str:
        dispatch = api.RoomAgentDispatch(agent_name=self.agent_name, metadata=self.metadata)
        return (
            api.AccessToken(self.endpoints.livekit_api_key, self.endpoints.livekit_api_secret)
            .with_identity(self.identity)
            .with_metadata(self.metadata)
            .with_grants(api.VideoGrants(room_join=True, room=self.room_name))
            .with_room_config(api.RoomConfiguration(agents=[dispatch]))
            .to_jwt()
        )

    async def join(self, timeout_s: float = 30.0) -> None:
        token = self._token()
        self.room.register_text_stream_handler("lk.transcription", self._on_text_stream)
        self.room.on("participant_connected", self._on_participant)
        self.room.on("participant_attributes_changed", lambda *_: self._changed.set())
        self.join_started_at = time.time()
        await asyncio.wait_for(self.room.connect(self.endpoints.livekit_url, token), timeout_s)
        self.connected_at = time.time()
        for participant in self.room.remote_participants.values():
            self._on_participant(participant)

    def _on_participant(self, participant: rtc.RemoteParticipant) -> None:
        if (
            participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and self.agent_joined_at is None
        ):
            self.agent_joined_at = time.time()
            self._changed.set()

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        opened = time.time()

        async def read() -> None:
            try:
                text = await reader.read_all()
            except rtc.StreamError:
                return
            self.transcripts.append(Transcript(opened, time.time(), text))
            self._changed.set()

        asyncio.ensure_future(read())

    async def wait_transcripts(self, count: int, timeout_s: float) -> Transcript:
        deadline = time.monotonic() + timeout_s
        while len(self.transcripts) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"transcript #{count} did not arrive in {timeout_s:.0f}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
        return self.transcripts[count - 1]

    async def served_by(self, timeout_s: float) -> str:
        """The agent type Switchboard's agent says it is (its `switchboard.agent_id`
        attribute, set right after the greeting is queued)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for participant in self.room.remote_participants.values():
                if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT and (
                    agent_id := participant.attributes.get("switchboard.agent_id")
                ):
                    return agent_id
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the agent did not say its type in {timeout_s:.0f}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    async def chat(self, text: str, timeout_s: float) -> tuple[float, float]:
        """Send on `lk.chat`; (seconds to the reply's first byte, seconds to the whole reply)."""
        before = len(self.transcripts)
        sent = time.time()
        await asyncio.wait_for(self.room.local_participant.send_text(text, topic="lk.chat"), 10)
        reply = await self.wait_transcripts(before + 1, timeout_s)
        return reply.opened_at - sent, reply.done_at - sent

    async def leave(self) -> None:
        try:
            await asyncio.wait_for(self.room.disconnect(), 10)
        except Exception as exc:
            print(f"(leaving {self.room_name} failed: {exc!r})", file=sys.stderr)


# -- the channels service ----------------------------------------------------------------

CHANNELS_STARTED = "channels service started"
"""What `python -m channels serve` logs once it listens with its bindings loaded
(channels/service.py STARTED)."""


@dataclass
class ChannelsProcess:
    """`python -m channels serve` in a process of its own (its memory and CPU are its own),
    talking to the stack's LiveKit, database and Switchboard worker."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def healthz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))

    def wait_bindings(self, binding_ids: list[str], timeout_s: float = 30.0) -> list[str]:
        """Until every binding runs (the ones still missing at the deadline are returned:
        a runner whose start failed is in `channel_status` with why)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                running = set(self.healthz().get("bindings", []))
            except OSError:
                running = set()
            missing = [b for b in binding_ids if b not in running]
            if not missing or time.monotonic() >= deadline:
                return missing
            if self.process.poll() is not None:
                raise RuntimeError(f"the channels service exited:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line[:400] for line in text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session
            self.process.wait(10)


def start_channels(
    stack: BenchStack,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    reload_s: float = 60.0,
) -> ChannelsProcess:
    """The channels service on a free port for the stack's Switchboard worker; returns once it
    listens. It loads the bindings stored before it starts; `reload_s` is long because a look
    every 2 s (the default) is CPU a bench would count as the channel's."""
    assert stack.endpoints is not None
    port = reserve_port(0, "channels", "CHANNELS_PORT")
    env = (
        os.environ
        | stack.endpoints.as_env()
        | {
            "MONGO_DB": stack.database_name,
            "AGENT_NAME": stack.workers["switchboard"].agent_name,
            "CHANNELS_PORT": str(port),
            "CHANNELS_RELOAD_S": str(reload_s),
            "CHANNELS_SPOOL_DIR": str(stack.run_dir / "channels-spool"),
        }
        | (extra_env or {})
    )
    log_path = stack.run_dir / "logs" / "channels.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "channels", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    channels = ChannelsProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while CHANNELS_STARTED not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() >= deadline:
            channels.stop()
            raise RuntimeError(f"the channels service did not start:\n{channels.log_tail()}")
        time.sleep(0.2)
    return channels
