"""What one delivery sends: the structured CloudEvent and its Standard Webhooks headers."""

import json
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook

from agent_configs.cloudevents import cloudevent, json_ready

CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "Switchboard-Webhooks/1"


def body_of(event: dict[str, Any]) -> bytes:
    """The structured CloudEvent of an outbox document, as the bytes that are signed and sent."""
    return json.dumps(
        cloudevent(event), ensure_ascii=False, separators=(",", ":"), default=_json_default
    ).encode()


def headers_of(event_id: str, body: bytes, secrets: list[str], now: datetime) -> dict[str, str]:
    """`webhook-signature` carries one `v1,<base64>` per secret (current, then the previous one
    during a rotation's grace), space-separated: a receiver holding either verifies."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, now, text) for secret in secrets)
    return {
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


def _json_default(value: Any) -> Any:
    """`data` is plain JSON already (cloudevents.json_ready); an outbox document written by
    hand with a datetime in it is still sent, not stuck."""
    return json_ready(value)
