"""What a viewer key reads of an address the operator stored: its origin, never its path.

A routing hook's or a webhook receiver's path and query are often a capability
(`/hooks/<tenant-token>`): knowing them is enough to call it. The audit trail already names
the host only (webhook.* events); reads by a viewer do the same with `scheme://host[:port]`.
Admins read the full URL (they write it).
"""

import re
from typing import Any
from urllib.parse import urlsplit

_HTTP_URL = re.compile(r"^https?://", re.IGNORECASE)


def origin(url: str) -> str:
    """`https://crm.example:8443/route?x=1` -> `https://crm.example:8443` (no userinfo)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, bracketed again as in the URL
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""  # not a number (never accepted at write time): the host alone
    return f"{parts.scheme.lower()}://{host}{port}"


def origins_only(value: Any) -> Any:
    """`value` with every http(s) URL string, at any depth, replaced by its origin: a custom
    routing strategy's params are shown the same way as the webhook strategy's `url`."""
    if isinstance(value, str):
        return origin(value) if _HTTP_URL.match(value) else value
    if isinstance(value, dict):
        return {key: origins_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [origins_only(item) for item in value]
    return value
