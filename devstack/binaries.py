"""Builds the Go services of the local stack, once, into the git-ignored `.devstack/bin`.

A stamp file beside each binary records what it was built from (module version, or a hash
of our FerretDB main), so a warm start skips the build and a version bump rebuilds.
"""

import hashlib
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from devstack.errors import BuildFailed, GoToolchainMissing

FERRETDB_SOURCE = Path(__file__).parent / "ferretdb"
JAEGER_TOOLS = Path(__file__).parent / "jaeger"
HEARTBEAT_S = 20.0


@dataclass(frozen=True)
class GoBinary:
    """A binary made by `go install module/pkg@version`, `go build` of a local main, or (`tool`)
    `go build` of a tool a local module requires (`go get -tool`): its go.sum pins every module
    it builds from, and a dependency's own replace directives do not apply there."""

    name: str
    package: str
    version: str | None = None
    source_dir: Path | None = None
    produces: str | None = None  # the file `go install` writes, when not the package's last element
    tool: bool = False

    def stamp(self) -> str:
        if self.source_dir is None:
            return f"{self.package}@{self.version}"
        digest = hashlib.sha256()
        for path in sorted(self.source_dir.glob("*")):
            if path.suffix in (".go", ".mod", ".sum"):
                digest.update(path.name.encode() + path.read_bytes())
        return f"{self.package}#{digest.hexdigest()[:16]}"

    def build_command(self, output: Path) -> tuple[list[str], Path | None, dict[str, str]]:
        env = dict(os.environ)
        if self.source_dir is None:
            env["GOBIN"] = str(output.parent / f".{self.name}.gobin")
            return ["go", "install", f"{self.package}@{self.version}"], None, env
        target = self.package if self.tool else "."
        return ["go", "build", "-o", str(output), target], self.source_dir, env


LIVEKIT_SERVER = GoBinary(
    name="livekit-server", package="github.com/livekit/livekit-server/cmd/server", version="v1.13.5"
)
FERRETDB = GoBinary(
    name="ferretdb", package="switchboard/devstack/ferretdb", source_dir=FERRETDB_SOURCE
)
KUSTOMIZE = GoBinary(
    name="kustomize",
    package="sigs.k8s.io/kustomize/kustomize/v5",
    version="v5.7.1",
    produces="kustomize",
)
"""For the manifest tests; v5.7.1 is the newest release that builds with Go 1.26."""
JAEGER = GoBinary(
    name="jaeger",
    package="github.com/jaegertracing/jaeger/cmd/jaeger",
    source_dir=JAEGER_TOOLS,
    tool=True,
)
"""The trace backend (v1.75.0, pinned in devstack/jaeger/go.mod): OTLP in, query API out, spans
in memory. Built this way its UI is a placeholder page (the UI's assets are not a Go module);
the console shows traces. `go install ...@v1.75.0` is refused: Jaeger's go.mod has replace
directives."""


def require_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoToolchainMissing()
    return go


def ensure_built(binary: GoBinary, bin_dir: Path, console: Console) -> Path:
    """Return the path of an up-to-date binary, building it first when needed."""
    output = bin_dir / binary.name
    stamp_file = bin_dir / f"{binary.name}.stamp"
    if output.exists() and stamp_file.exists() and stamp_file.read_text() == binary.stamp():
        return output
    require_go()
    bin_dir.mkdir(parents=True, exist_ok=True)
    log_path = bin_dir.parent / "logs" / f"build-{binary.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _run_build(binary, output, log_path, console)
    if binary.source_dir is None:
        gobin = Path(binary.build_command(output)[2]["GOBIN"])
        produced = gobin / (binary.produces or Path(binary.package).name)
        shutil.move(produced, output)
        shutil.rmtree(gobin, ignore_errors=True)
    stamp_file.write_text(binary.stamp())
    console.print(f"built {binary.name} in {time.monotonic() - started:.0f}s")
    return output


def _run_build(binary: GoBinary, output: Path, log_path: Path, console: Console) -> None:
    command, cwd, env = binary.build_command(output)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        last_line = ["starting"]

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                last_line[0] = line.strip()[:90]

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        _show_progress(binary.name, process, last_line, console)
        reader.join()
    if process.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-15:]
        raise BuildFailed(binary.name, " ".join(command), log_path, tail)


def _show_progress(
    name: str, process: subprocess.Popen[str], last_line: list[str], console: Console
) -> None:
    """A spinner with the current `go` step on a terminal; a heartbeat line in CI logs."""
    started = time.monotonic()
    if console.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"building {name} (first time only)")
            while process.poll() is None:
                progress.update(task, description=f"building {name}: {last_line[0]}")
                time.sleep(0.2)
        return
    console.print(f"building {name} (first time only; a few minutes on 2 cores)...")
    next_beat = started + HEARTBEAT_S
    while process.poll() is None:
        if time.monotonic() >= next_beat:
            console.print(
                f"  still building {name} ({time.monotonic() - started:.0f}s): {last_line[0]}"
            )
            next_beat += HEARTBEAT_S
        time.sleep(0.2)
