"""The catalog snapshot: private on disk, and never trusted when it is not."""

import os
import stat
from pathlib import Path

from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import DEFAULT_RULES
from agent_configs.snapshot import CatalogSnapshot


def a_config():
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    return configs[0]


def test_a_saved_config_and_rules_come_back_from_private_files(tmp_path: Path) -> None:
    snapshot = CatalogSnapshot(tmp_path / "catalog" / "db")
    assert not snapshot.seen_database
    config = a_config()
    snapshot.save_config(config)
    snapshot.save_rules(DEFAULT_RULES.model_dump(mode="json"))
    assert snapshot.seen_database
    assert snapshot.config(config.agent_id) == config
    assert snapshot.config("no-such-agent") is None
    assert snapshot.rules() == DEFAULT_RULES.model_dump(mode="json")
    for path in [
        tmp_path / "catalog",
        tmp_path / "catalog" / "db",
        *(tmp_path / "catalog").rglob("*"),
    ]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_a_snapshot_file_others_may_write_is_ignored(tmp_path: Path) -> None:
    snapshot = CatalogSnapshot(tmp_path / "db")
    config = a_config()
    snapshot.save_config(config)
    (written,) = (tmp_path / "db" / "configs").glob("*.json")
    os.chmod(written, 0o666)  # anyone could have planted its model and prompt
    assert snapshot.config(config.agent_id) is None


def test_a_world_readable_directory_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir(mode=0o755)
    os.chmod(tmp_path / "db", 0o755)
    assert CatalogSnapshot(tmp_path / "db").usable
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700


def test_an_unusable_directory_turns_the_snapshot_off_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    snapshot = CatalogSnapshot(tmp_path / "file" / "db")
    assert not snapshot.usable and not snapshot.seen_database
    snapshot.save_config(a_config())  # no error: a snapshot never fails a room


def test_a_file_is_current_only_under_the_stamp_it_was_read_under_and_within_max_age(
    tmp_path: Path,
) -> None:
    snapshot = CatalogSnapshot(tmp_path / "db")
    config = a_config()
    snapshot.save_config(config, stamp="s1")
    snapshot.save_rules(DEFAULT_RULES.model_dump(mode="json"), stamp="s1")
    assert snapshot.current_config(config.agent_id, "s1", max_age_s=30) == config
    assert snapshot.current_rules("s1", max_age_s=30) == DEFAULT_RULES.model_dump(mode="json")
    assert snapshot.current_config(config.agent_id, "s2", max_age_s=30) is None
    assert snapshot.current_rules("s2", max_age_s=30) is None
    assert (
        snapshot.current_config(config.agent_id, "s1", max_age_s=0) is None
    )  # a hand edit may hide
    assert snapshot.config(config.agent_id) == config  # offline, whatever the label


def test_a_file_written_before_labels_is_served_offline_only(tmp_path: Path) -> None:
    snapshot = CatalogSnapshot(tmp_path / "db")
    config = a_config()
    snapshot.save_config(config)
    (written,) = (tmp_path / "db" / "configs").glob("*.json")
    written.write_text(config.model_dump_json())  # the bare document older workers wrote
    assert snapshot.config(config.agent_id) == config
    assert snapshot.current_config(config.agent_id, "s1", max_age_s=30) is None
