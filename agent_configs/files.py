"""Agent types as YAML/JSON files: the built-in defaults and operators' own definitions."""

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from agent_configs.models import AgentConfig, describe_validation_error

DEFAULTS_DIR = Path(__file__).parent / "defaults"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
STORE_OWNED_FIELDS = ("version", "created_at", "updated_at")


@dataclass(frozen=True)
class ConfigFileError:
    path: Path
    problems: list[str]

    def __str__(self) -> str:
        return f"{self.path.name}: " + "; ".join(self.problems)


def load_config_file(path: Path) -> AgentConfig | ConfigFileError:
    """Parse and validate one file; never raises for bad content, returns what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return ConfigFileError(path, [f"cannot read file: {exc}"])
    except yaml.YAMLError as exc:
        return ConfigFileError(path, [f"not valid YAML/JSON: {exc}".replace("\n", " ")])
    if not isinstance(data, dict):
        return ConfigFileError(path, ["(config): expected a mapping of fields at the top level"])
    owned = [name for name in STORE_OWNED_FIELDS if name in data]
    if owned:
        return ConfigFileError(path, [f"{name}: set by the store, remove it" for name in owned])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        return ConfigFileError(path, describe_validation_error(exc))


def config_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def load_config_dir(directory: Path) -> tuple[list[AgentConfig], list[ConfigFileError]]:
    """All configs of a directory, valid ones and errors apart. Duplicate agent_ids are errors."""
    configs: list[AgentConfig] = []
    errors: list[ConfigFileError] = []
    seen: dict[str, Path] = {}
    for path in config_files(directory):
        loaded = load_config_file(path)
        if isinstance(loaded, ConfigFileError):
            errors.append(loaded)
        elif loaded.agent_id in seen:
            errors.append(
                ConfigFileError(
                    path,
                    [
                        f"agent_id: '{loaded.agent_id}' is also defined in {seen[loaded.agent_id].name}"
                    ],
                )
            )
        else:
            seen[loaded.agent_id] = path
            configs.append(loaded)
    return configs, errors
