"""Fingerprints of what an eval run tested, so the release gate can tell whether a run counts.

A run counts for a version when it ran the type's current suite on the same definition: the
digest leaves out what the store changes without changing behaviour (version numbers and
timestamps, the status a pause or resume files as a new version) and the gate setting itself,
so a rollback to a tested definition, or a resume of one, finds the run made on it.
"""

import hashlib
import json
from typing import Any

from agent_configs.evals import Suite
from agent_configs.models import AgentConfig

NOT_BEHAVIOUR = frozenset({"status", "release_gate"})


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def definition_digest(config: AgentConfig) -> str:
    """Equal for two versions that make the worker behave the same."""
    return _digest({k: v for k, v in config.definition().items() if k not in NOT_BEHAVIOUR})


def suite_digest(suite: Suite) -> str:
    """Defaults included: a suite written with or without `repeat: 1` is the same suite."""
    return _digest(suite.model_dump(mode="json"))
