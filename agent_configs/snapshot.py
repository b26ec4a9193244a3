"""The last-known good catalog (agent configs and routing rules) on local disk.

A room that arrives while the database is unreachable is served from what this worker last
read from it. Job processes are forkserver children that live for one session, so nothing in
a job's memory outlives it; the main worker process has no channel livekit-agents would hand
to a job. A directory does both: every job that reads a config or the rules from MongoDB
writes them here, and a job that cannot reach MongoDB reads them back. It outlives a worker
restart in the same pod too, and costs no IPC.

One file per config (named by a hash of the agent id) and one for the rules, each written
to a temporary file and renamed, so concurrent jobs never see half a file and never
overwrite each other's configs. The directory is 0700 and files 0600, owned by the service
user: these files decide which model and prompt a room gets, so a directory someone else
owns or can write into is not used at all (a warning, and rooms are refused as if the worker
had never seen the database). One subdirectory per database name, so two databases on one
host (tests, staging) never serve each other's catalogs.

Each file also says under which change stamp it was read, and when. While the database is up,
a fresh job process whose stamp read gives that same stamp may use the file as current
(`current_config`, `current_rules`) instead of reading it again: every job starts with an
empty catalog, and a cold room cost 4 round trips (stamp, rules, version, config; ~25 ms on
FerretDB), which a matching snapshot brings down to the stamp read alone.
"""

import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from agent_configs.models import AgentConfig
from agent_configs.writer import private_dir

logger = logging.getLogger(__name__)

RULES_FILE = "routing_rules.json"


class CatalogSnapshot:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self.usable = self._prepare()

    def _prepare(self) -> bool:
        """The same rule as the record spool (`private_dir`): a directory others could write
        to could hold planted configs, so the snapshot is off rather than trusted."""
        for path in (self._dir.parent, self._dir, self._dir / "configs"):
            problem = private_dir(path)
            if problem is not None:
                logger.warning("catalog snapshot off: %s: %s", path, problem)
                return False
        return True

    # -- writes: after every successful read from the database ----------------------------

    def save_config(self, config: AgentConfig, stamp: str | None = None) -> None:
        """`stamp`: the change stamp read before `config` was (its data is at least that new)."""
        self._write(
            self._config_path(config.agent_id),
            _labelled("config", config.model_dump(mode="json"), stamp),
        )

    def save_rules(self, rules_document: dict, stamp: str | None = None) -> None:
        self._write(self._dir / RULES_FILE, _labelled("rules", rules_document, stamp))

    def due(self, what: str, every_s: float) -> bool:
        """Whether `what` was last `mark`ed more than `every_s` ago (by any job)."""
        try:
            return time.time() - (self._dir / f".{what}").stat().st_mtime >= every_s
        except OSError:
            return self.usable

    def mark(self, what: str) -> None:
        self._write(self._dir / f".{what}", {"at": time.time()})

    # -- reads: when the database is unreachable ------------------------------------------

    def config(self, agent_id: str) -> AgentConfig | None:
        return self._config(agent_id, None)

    def rules(self) -> dict | None:
        return self._unlabelled("rules", self._read(self._dir / RULES_FILE), None)

    # -- reads while the database is up: only what was read under the current stamp -------

    def current_config(self, agent_id: str, stamp: str, max_age_s: float) -> AgentConfig | None:
        """The config if it was read under `stamp` within `max_age_s` (the catalog's safety net
        for hand edits that bypass the stamp), else None."""
        return self._config(agent_id, (stamp, max_age_s))

    def current_rules(self, stamp: str, max_age_s: float) -> dict | None:
        return self._unlabelled("rules", self._read(self._dir / RULES_FILE), (stamp, max_age_s))

    def _config(self, agent_id: str, current: tuple[str, float] | None) -> AgentConfig | None:
        document = self._unlabelled("config", self._read(self._config_path(agent_id)), current)
        if document is None:
            return None
        try:
            config = AgentConfig.model_validate(document)
        except ValidationError as exc:
            logger.warning("catalog snapshot: config %s unreadable: %s", agent_id, exc)
            return None
        return config if config.agent_id == agent_id else None

    @staticmethod
    def _unlabelled(key: str, file: dict | None, current: tuple[str, float] | None) -> dict | None:
        """The document inside a labelled file; with `current` (stamp, max age), only if the
        label matches. A file written before labels existed is the bare document (offline use)."""
        if file is None:
            return None
        if not isinstance(file.get(key), dict):
            return None if current is not None else file
        if current is not None:
            stamp, max_age_s = current
            checked_at = file.get("checked_at")
            if file.get("stamp") != stamp or not isinstance(checked_at, int | float):
                return None
            if time.time() - checked_at >= max_age_s:
                return None
        document: dict = file[key]
        return document

    @property
    def seen_database(self) -> bool:
        """True once any job of this worker routed a room with rules read from the database."""
        return self.usable and (self._dir / RULES_FILE).is_file()

    def _config_path(self, agent_id: str) -> Path:
        return self._dir / "configs" / f"{hashlib.sha256(agent_id.encode()).hexdigest()[:32]}.json"

    def _write(self, path: Path, document: dict) -> None:
        if not self.usable:
            return
        try:
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # 0600
            with os.fdopen(fd, "w") as file:
                json.dump(document, file)
            os.replace(temporary, path)
        except (OSError, TypeError, ValueError) as exc:  # a snapshot is a nicety: never fail a room
            logger.warning("catalog snapshot not written (%s): %s", path.name, exc)

    def _read(self, path: Path) -> dict | None:
        if not self.usable:
            return None
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                logger.warning(
                    "catalog snapshot: %s ignored (not a private file of this user)", path.name
                )
                return None
            with path.open() as file:
                document = json.load(file)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("catalog snapshot: %s unreadable: %s", path.name, exc)
            return None
        return document if isinstance(document, dict) else None


def _labelled(key: str, document: dict, stamp: str | None) -> dict:
    return {"stamp": stamp, "checked_at": time.time(), key: document}
