"""The local stack of real services (LiveKit server, FerretDB) for `make dev` and the tests."""

from pathlib import Path

from devstack.services import Devstack, Endpoints

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO_ROOT / ".devstack"

__all__ = ["DEFAULT_ROOT", "REPO_ROOT", "Devstack", "Endpoints"]
