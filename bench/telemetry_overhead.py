"""Telemetry overhead: what the tracing code costs a worker while export is off.

    .venv/bin/python -m bench.telemetry_overhead [--size 8] [--rounds 2] [--turns 6]

Two Switchboard workers side by side on one LiveKit server, one FerretDB and one simulated
model (bench/simulated_llm.py, 300 ms to the first token, 50 tokens/s), both with no `OTEL_*`
variable (export off), both built from this repository's HEAD:

- `export_off`: HEAD as committed (the session span, the routing, config, record-write and
  delivery spans, the spans sink, the outbox's traceparent: all on OpenTelemetry's no-op
  tracer, since no provider is set);
- `no_telemetry`: HEAD with the commits that put tracing in the session's path reverted
  (`--revert`, default TELEMETRY_COMMITS): the same worker without a line of our telemetry.

Each tree is a `git clone --shared` of this repository in the run's directory (the revert is
made there; nothing here changes), and each worker runs from its own tree (`python -m worker`
with that tree first on the path, ahead of the editable install).

A round runs one level of `--size` concurrent text sessions against each worker
(bench/capacity.py's Level: the four built-in types by purpose, each session greeting + `--turns`
messages `--think-s` apart), alternating which worker goes first. Per worker, over all rounds:
CPU per turn of its process tree in the talk window (every session live), reply first-text
p50/p95 and whole-reply p50/p95 (message -> `lk.transcription`), and the ratios export_off /
no_telemetry. Target: export off costs nothing measurable (ratios within the run's noise,
which the two rounds of each worker show).

Writes bench/results/telemetry_overhead-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import capacity
from bench.harness import (
    BenchStack,
    LoadWatch,
    WorkerProcess,
    _wait_registered,
    fmt,
    machine_info,
    percentile,
    print_table,
    write_results,
)
from devstack import REPO_ROOT
from devstack.services import reserve_port

SYSTEMS = ("export_off", "no_telemetry")
TELEMETRY_COMMITS = ("6f7ce81", "3348255", "73f0054")
"""The commits that put tracing calls in a session's path, newest first: the session end's
flush bound, the spans sink, the session span with routing, config, record-write and delivery
spans and the outbox's traceparent. The setup module itself (agent_configs/telemetry.py)
stays: nothing calls it once they are gone."""


def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_tree(run_dir: Path, name: str, revert: tuple[str, ...]) -> tuple[Path, str]:
    """A shared clone of HEAD in the run directory, with `revert` reverted (uncommitted)."""
    head = git("rev-parse", "HEAD")
    tree = run_dir / name
    git("clone", "--quiet", "--shared", "--no-checkout", str(REPO_ROOT), str(tree))
    git("checkout", "--quiet", "--detach", head, cwd=tree)
    if revert:
        reverting = subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "revert",
             "--no-commit", *revert],
            cwd=tree, capture_output=True, text=True,
        )  # fmt: skip
        if reverting.returncode != 0:
            resolve_conflicts(tree, reverting.stdout + reverting.stderr)
    return tree, head


def resolve_conflicts(tree: Path, said: str) -> None:
    """The session's end and id in worker/server.py changed after the tracing commit (the
    scale work's end backstop, the session id from the job): where the revert conflicts, keep
    HEAD's code and take out what is left of the tracing in it, so the baseline differs from
    HEAD by the tracing only."""
    conflicted = git("diff", "--name-only", "--diff-filter=U", cwd=tree).split()
    if conflicted != ["worker/server.py"]:
        raise RuntimeError(f"the revert conflicts where this bench cannot resolve it:\n{said}")
    path = tree / "worker" / "server.py"
    text = re.sub(
        r"<<<<<<< HEAD\n(.*?)=======\n.*?>>>>>>> [^\n]*\n", r"\1", path.read_text(), flags=re.S
    )
    text = re.sub(r"\n    # The session's trace \(worker/tracing.py.*?attach\(traced.context\)", "",
                  text, flags=re.S)  # fmt: skip
    text = text.replace("    trace: SessionTrace | None = None\n", "")
    text = re.sub(
        r"(    async def _finish_traced\(self, reason: str\) -> None:\n).*?(\n    async def )",
        r"\1        await self._finish(reason)\n\2",
        text,
        flags=re.S,
    )
    leftovers = [
        w
        for w in ("SessionTrace", "otel_context", "traced.", "traced =", "self.trace")
        if w in text
    ]
    if leftovers:
        raise RuntimeError(f"tracing left in the baseline's worker/server.py: {leftovers}")
    path.write_text(text)
    compile(text, str(path), "exec")


def start_worker_from(
    stack: BenchStack, system: str, tree: Path, max_sessions: int
) -> WorkerProcess:
    assert stack.endpoints is not None
    agent_name = f"bench-{system}-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # export off
    env |= stack.endpoints.as_env() | {
        "WORKER_MAX_SESSIONS": str(max_sessions),
        "MONGO_DB": stack.database_name,
        "AGENT_NAME": agent_name,
        "PROMETHEUS_PORT": str(reserve_port(0, "metrics", "UNUSED")),
        "PROMETHEUS_MULTIPROC_DIR": str(stack.run_dir / f"metrics-{system}"),
        "SPOOL_DIR": str(stack.run_dir / f"spool-{system}"),
        "WORKER_HTTP_PORT": str(port := reserve_port(0, f"{system} health", "UNUSED")),
        "PYTHONPATH": str(tree),
    }
    log_path = stack.run_dir / "logs" / f"worker-{system}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "start"],
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(system, agent_name, process, log_path, port)


def as_switchboard(system: str, level: int, index: int) -> dict[str, Any]:
    """Both systems are Switchboard: each session routed by purpose to a built-in type."""
    metadata = _session_metadata("switchboard", level, index)
    metadata["user_id"] = f"bench-tel{level}-{system}-{index}"
    return metadata


_session_metadata = capacity.session_metadata


async def run_rounds(stack: BenchStack, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for round_index in range(args.rounds):
        order = SYSTEMS if round_index % 2 == 0 else tuple(reversed(SYSTEMS))
        for system in order:
            result = await capacity.measure_level(stack, system, args.size, args, None)
            result["round"] = round_index
            results.append(result)
    return results


def pooled(results: list[dict[str, Any]], system: str) -> dict[str, Any]:
    """One system over every round: talk-window CPU over talk-window turns, reply times of all
    turns; each round's CPU per turn beside it (the run's noise)."""
    mine = [r for r in results if r["system"] == system]
    cpu_s = sum(r["cpu"]["talk_s"] or 0.0 for r in mine)
    turns = sum(r["cpu"]["talk_turns"] for r in mine)
    first = [
        reply["first_byte_s"] * 1000 for r in mine for s in r["sessions"] for reply in s["replies"]
    ]
    whole = [reply["whole_s"] * 1000 for r in mine for s in r["sessions"] for reply in s["replies"]]
    return {
        "system": system,
        "rounds": len(mine),
        "sessions_ok": sum(r["ok"] for r in mine),
        "sessions": sum(r["level"] for r in mine),
        "turns": len(first),
        "cpu_ms_per_turn": cpu_s * 1000 / turns if turns else None,
        "cpu_ms_per_turn_by_round": [(r["cpu"]["per_turn_talk_s"] or 0.0) * 1000 for r in mine],
        "first_text_p50_ms": percentile(first, 0.50),
        "first_text_p95_ms": percentile(first, 0.95),
        "whole_p50_ms": percentile(whole, 0.50),
        "whole_p95_ms": percentile(whole, 0.95),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    off, bare = pooled(results, "export_off"), pooled(results, "no_telemetry")
    keys = [
        ("cpu_ms_per_turn", "CPU ms / turn"),
        ("first_text_p50_ms", "first text p50 ms"),
        ("first_text_p95_ms", "first text p95 ms"),
        ("whole_p50_ms", "whole reply p50 ms"),
        ("whole_p95_ms", "whole reply p95 ms"),
    ]
    ratios = {key: ratio(off[key], bare[key]) for key, _ in keys}
    rows = [
        [label, fmt(off[key], digits=1), fmt(bare[key], digits=1), fmt(ratios[key], "x", 3)]
        for key, label in keys
    ]
    rows.append(
        [
            "sessions ok",
            f"{off['sessions_ok']}/{off['sessions']}",
            f"{bare['sessions_ok']}/{bare['sessions']}",
            "",
        ]
    )
    rows.append(
        [
            "CPU ms / turn by round",
            " ".join(f"{v:.1f}" for v in off["cpu_ms_per_turn_by_round"]),
            " ".join(f"{v:.1f}" for v in bare["cpu_ms_per_turn_by_round"]),
            "",
        ]
    )
    print()
    print_table(
        "export off vs no telemetry code (same run)",
        ["", "export off", "no telemetry code", "ratio"],
        rows,
    )
    spread = [v for p in (off, bare) for v in p["cpu_ms_per_turn_by_round"] if v]
    noise = (max(spread) - min(spread)) / statistics.median(spread) if spread else None
    print(f"round-to-round spread of CPU per turn (both systems): {fmt(noise, 'x', 3)}")
    return {"export_off": off, "no_telemetry": bare, "ratios": ratios, "cpu_spread": noise}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="concurrent sessions per level")
    parser.add_argument("--rounds", type=int, default=2, help="levels per system, alternating")
    parser.add_argument("--turns", type=int, default=6, help="messages per session")
    parser.add_argument("--think-s", type=float, default=1.0)
    parser.add_argument("--spread-s", type=float, default=2.0)
    parser.add_argument("--join-stagger-ms", type=float, default=100.0)
    parser.add_argument("--settle-s", type=float, default=2.0)
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--budget-ms", type=float, default=150.0)
    parser.add_argument("--level-timeout", type=float, default=300.0)
    parser.add_argument(
        "--revert",
        nargs="*",
        default=list(TELEMETRY_COMMITS),
        help="commits reverted for the no_telemetry worker",
    )
    args = parser.parse_args()
    capacity.session_metadata = as_switchboard  # both systems route like Switchboard
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    info = machine_info()
    started = time.monotonic()
    with LoadWatch() as load, BenchStack(llm="simulated", max_sessions=args.size + 4) as stack:
        # The stack's own two workers stay idle; ours are the ones measured.
        trees = {}
        for system, revert in (("export_off", ()), ("no_telemetry", tuple(args.revert))):
            tree, head = make_tree(stack.run_dir, system, revert)
            trees[system] = {"tree": str(tree), "head": head, "reverted": list(revert)}
            stack.workers[system] = start_worker_from(stack, system, tree, args.size + 4)
        for system in SYSTEMS:
            _wait_registered(stack.workers[system])
        print(f"stack up in {time.monotonic() - started:.1f}s; run dir {stack.run_dir}", flush=True)
        results = asyncio.run(run_rounds(stack, args))
    outcome = report(results)
    print("\n" + load.describe(info["cpus"]) + f"; total {time.monotonic() - started:.0f}s")
    path = write_results(
        "telemetry_overhead",
        {
            "machine": info,
            "load": load.report(),
            "args": vars(args),
            "trees": trees,
            **outcome,
            "levels": results,
            "wall_s": time.monotonic() - started,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
