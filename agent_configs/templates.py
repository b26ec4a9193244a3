"""Placeholders in an agent's instructions and greeting, filled at session start.

    Hi {{user_details.name}}, you are on the {{variables.plan | default: "basic"}} plan.

A placeholder is a dotted path into the session's values, optionally with a declared default.
The roots are fixed (ROOTS): `user_details`, `user_id`, `purpose` and `tenant` come from the
room's metadata, `variables` from the routing decision (the `webhook` strategy's answer),
`session_id` from the worker. So templates work from metadata alone, without any hook.

This is deliberately not Jinja: the text is written by whoever holds an admin key and the
values by a frontend or an operator's service, so nothing in either may run code. Rendering is
a regex over the text and plain dict lookups (list items by index): `{{__import__}}` is just a
root that does not exist. What it renders:
- a string as it is (nothing escaped: the text goes to a language model, not to HTML);
- a number or boolean as JSON writes it (`3`, `1.5`, `true`), an object or list as compact JSON;
- a missing value, `null` or `""` as the default if one is declared, else as nothing;
- anything that is not a well-formed placeholder (`{{` never closed, `{{ 1 + 1 }}`) literally.
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ROOTS = ("user_details", "variables", "user_id", "purpose", "tenant", "session_id")

_STRING = r'"(?:[^"\\]|\\.)*"'
_PLACEHOLDER = re.compile(
    r"\{\{\s*"
    r"(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)"
    rf"\s*(?:\|\s*default\s*:\s*(?P<default>{_STRING})\s*)?"
    r"\}\}"
)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Placeholder:
    path: tuple[str, ...]
    default: str | None

    @property
    def root(self) -> str:
        return self.path[0]


def placeholders(text: str) -> Iterator[Placeholder]:
    """Every well-formed placeholder of `text`, in order."""
    for match in _PLACEHOLDER.finditer(text):
        yield _placeholder(match)


def unknown_roots(text: str) -> list[str]:
    """The placeholders whose root is not one of ROOTS, as written (`foo.bar`), once each."""
    found: dict[str, None] = {}
    for placeholder in placeholders(text):
        if placeholder.root not in ROOTS:
            found[".".join(placeholder.path)] = None
    return list(found)


def check_template(text: str | None) -> str | None:
    """Pydantic after-validator for instructions and greeting: an unknown root is a typo that
    would silently render as nothing, so it is refused where it is written."""
    if text is None:
        return None
    unknown = unknown_roots(text)
    if unknown:
        shown = ", ".join(f"{{{{{path}}}}}" for path in unknown)
        raise ValueError(
            f"unknown placeholder {shown}: a placeholder starts with one of {', '.join(ROOTS)}"
        )
    return text


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each placeholder replaced by its value in `values` (see the module doc)."""
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        placeholder = _placeholder(match)
        value = _lookup(values, placeholder.path) if placeholder.root in ROOTS else _MISSING
        if value is _MISSING or value is None or value == "":
            return placeholder.default or ""
        return _as_text(value)

    return _PLACEHOLDER.sub(replace, text)


def _placeholder(match: re.Match[str]) -> Placeholder:
    default = match.group("default")
    return Placeholder(
        tuple(match.group("path").split(".")), _unquoted(default) if default else None
    )


def _unquoted(literal: str) -> str:
    """A default is a JSON string literal; one with an escape JSON lacks (`"\\q"`) is taken as written."""
    try:
        return str(json.loads(literal))
    except ValueError:
        return literal[1:-1]


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = values
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        return ""
