"""py-spy on a worker's whole process tree (main, forkserver, every job process, the ones
started while it records), for a bench that wants to know where the CPU went.

py-spy is not a dependency of the project: install it apart (`python3 -m venv /tmp/pyspy &&
/tmp/pyspy/bin/pip install py-spy`) or put it on PATH. It samples from outside the processes
(`--nonblocking`: they are never paused), so the code under test is the code that ships.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("py-spy", "/tmp/pyspy/bin/py-spy")
WAITING = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "Condition.wait (threading.py)",
        "select (selectors.py)",
    }
)
"""Leaves of a thread that waits: `--nonblocking` sampling takes some for running (at 8
sessions they were 57% of the samples while the process tree's CPU time matched the rest)."""


def find_pyspy() -> str | None:
    for candidate in CANDIDATES:
        if found := shutil.which(candidate):
            return found
    return None


@dataclass
class TreeProfile:
    """`py-spy record --subprocesses` on `pid` from `start()` to `stop()`; raw collapsed
    stacks in `output`."""

    pid: int
    output: Path
    rate: int = 100
    process: subprocess.Popen[bytes] | None = None
    stacks: Counter[str] = field(default_factory=Counter)

    def start(self) -> None:
        executable = find_pyspy()
        if executable is None:
            raise RuntimeError("py-spy is not installed: see bench/pyspy.py")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                executable,
                "record",
                "--pid",
                str(self.pid),
                "--subprocesses",
                "--nonblocking",
                "--nolineno",
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.output.with_suffix(".log").open("wb"),
        )

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled; bounded, then it is killed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.stacks = Counter()
        if self.output.exists():
            for line in self.output.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    self.stacks[stack] += int(count)

    def top(self, count: int = 25) -> dict[str, Any]:
        """The functions that took the most samples: by self time (on top of the stack) and
        inclusive (anywhere in it, once per sample), and per process kind; samples of a
        thread waiting (`WAITING`) left out."""
        self_time: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        by_process: Counter[str] = Counter()
        total = 0
        waiting = 0
        for stack, samples in self.stacks.items():
            depth, frames = split_stack(stack)
            if frames and frames[-1] in WAITING:
                waiting += samples
                continue
            by_process[PROCESS_KINDS[min(depth, len(PROCESS_KINDS) - 1)]] += samples
            total += samples
            if frames:
                self_time[frames[-1]] += samples
            for frame in set(frames):
                inclusive[frame] += samples
        return {
            "samples": total,
            "waiting_samples_left_out": waiting,
            "rate_hz": self.rate,
            "by_process": dict(by_process.most_common()),
            "self": self_time.most_common(count),
            "inclusive": inclusive.most_common(count),
        }


PROCESS_KINDS = ("?", "main", "forkserver", "job process")
"""By depth in the tree: the worker, its forkserver, the forkserver's children."""


def split_stack(stack: str) -> tuple[int, list[str]]:
    """A `--subprocesses` raw stack -> (how deep its process is, its Python frames).

    py-spy puts one `process PID:"command line"` frame per ancestor first; a command line
    may hold `;` (the forkserver's does), so those frames are joined back first."""
    parts = stack.split(";")
    depth = 0
    index = 0
    while index < len(parts) and parts[index].startswith("process "):
        depth += 1
        while not parts[index].endswith('"') and index + 1 < len(parts):
            index += 1
        index += 1
    return depth, parts[index:]
