"""Redis for LiveKit's multi-node mode, from Debian's own packages, unpacked into the git-ignored
`.devstack/redis` without installing anything.

`apt-get install redis-server` would start a system-wide Redis on 6379 (and leave it running)
on a machine whose tests want one on a free port, in a temporary directory, for as long as
they run. `apt-get download` + `dpkg-deb -x` needs no root and changes nothing outside the
repository. Measured on Debian 12: redis-server 7.0.15 links two libraries a minimal
system lacks, libjemalloc2 and liblzf1, so they are unpacked beside it and found through
LD_LIBRARY_PATH; `ldd` then reports nothing missing.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devstack.errors import DevstackError

PACKAGES = ("redis-server", "redis-tools", "libjemalloc2", "liblzf1")
"""redis-tools holds the binary (redis-server is its symlink) and redis-cli."""
LIB_DIR = Path("usr/lib/x86_64-linux-gnu")


class RedisUnavailable(DevstackError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Redis (for LiveKit's multi-node mode) is not available: {reason}. The devstack "
            "unpacks Debian's redis-server into .devstack/redis; elsewhere, put a redis-server "
            "(>= 6) on PATH"
        )


class RedisBinary:
    """The redis-server (and redis-cli) the stack runs, with the environment it needs."""

    def __init__(self, server: Path, lib_dir: Path | None) -> None:
        self.server = server
        self.cli = server.with_name("redis-cli")
        self.lib_dir = lib_dir

    def env(self, base: dict[str, str]) -> dict[str, str]:
        if self.lib_dir is None:
            return base
        paths = [str(self.lib_dir), base.get("LD_LIBRARY_PATH", "")]
        return base | {"LD_LIBRARY_PATH": os.pathsep.join(p for p in paths if p)}


def ensure_redis(root: Path) -> RedisBinary:
    """The unpacked redis-server under `root/redis` (unpacking it the first time); without
    apt-get (not Debian), a redis-server on PATH."""
    unpacked = root / "redis"
    stamp = unpacked / "packages.stamp"
    binary = RedisBinary(unpacked / "usr" / "bin" / "redis-server", unpacked / LIB_DIR)
    if binary.server.exists() and stamp.exists() and stamp.read_text() == " ".join(PACKAGES):
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        on_path = shutil.which("redis-server")
        if on_path is None:
            raise RedisUnavailable("no apt-get/dpkg-deb here and no redis-server on PATH")
        return RedisBinary(Path(on_path), None)
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as downloads:
        _run(["apt-get", "download", "-q", *PACKAGES], Path(downloads))
        for deb in sorted(Path(downloads).glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], Path(downloads))
    missing = _missing_libraries(binary)
    if missing:
        raise RedisUnavailable(f"{binary.server} needs libraries not found: {', '.join(missing)}")
    stamp.write_text(" ".join(PACKAGES))
    return binary


def _run(command: list[str], cwd: Path) -> None:
    # As root, apt-get downloads "unsandboxed" (its _apt user cannot write the temporary
    # directory) and says so on stderr: kept out of the way unless the command fails.
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-6:]
        hint = (
            " (package lists missing: run `apt-get update` first)"
            if any("Unable to locate" in line or "has no installation" in line for line in output)
            else ""
        )
        raise RedisUnavailable(f"`{' '.join(command)}` failed{hint}: {' / '.join(output)}")


def _missing_libraries(binary: RedisBinary) -> list[str]:
    result = subprocess.run(
        ["ldd", str(binary.server)],
        env=binary.env(dict(os.environ)),
        capture_output=True,
        text=True,
        check=False,
    )
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]
