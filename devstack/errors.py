"""Errors of the local stack. Each message is the one line a newcomer needs to fix it."""

from pathlib import Path


class DevstackError(Exception):
    """Anything that stops the local stack; printed as one line, without a traceback."""


class GoToolchainMissing(DevstackError):
    def __init__(self) -> None:
        super().__init__(
            "Go toolchain not found on PATH: the local stack builds LiveKit server and FerretDB "
            "with Go >= 1.24 (install it from https://go.dev/dl), or set MONGO_URI and "
            "LIVEKIT_URL (+ LIVEKIT_API_KEY, LIVEKIT_API_SECRET) to use running services and "
            "build nothing"
        )


class BuildFailed(DevstackError):
    def __init__(self, name: str, command: str, log_path: Path, tail: list[str]) -> None:
        self.log_path = log_path
        details = "\n  ".join(tail)
        super().__init__(f"building {name} failed (`{command}`), full log: {log_path}\n  {details}")


class PortInUse(DevstackError):
    def __init__(self, service: str, port: int, env_name: str) -> None:
        self.port = port
        super().__init__(
            f"port {port} for {service} is already in use (another `make dev`?): stop what holds "
            f"it, or set {env_name}=<port> (0 = any free port)"
        )


class ServiceFailed(DevstackError):
    def __init__(self, service: str, reason: str, log_path: Path, tail: list[str]) -> None:
        details = "\n  ".join(tail)
        super().__init__(f"{service} {reason}; log: {log_path}\n  {details}")


class Interrupted(DevstackError):
    """SIGINT or SIGTERM while a service was starting: the stack stops instead of going on."""

    def __init__(self, service: str) -> None:
        super().__init__(f"stopped while {service} was starting")
