"""`python -m worker start|dev`: the Switchboard worker (livekit-agents CLI)."""

import os
from pathlib import Path

from worker.settings import get_worker_settings


def _prepare_metrics_dir() -> None:
    """prometheus_client picks multiprocess mode at import: the directory must exist first."""
    directory = Path(os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(get_worker_settings().prometheus_multiproc_dir)
    ))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # samples of processes from an earlier run
        stale.unlink()


if __name__ == "__main__":
    _prepare_metrics_dir()
    from livekit.agents import cli

    from worker.server import create_server

    cli.run_app(create_server())
