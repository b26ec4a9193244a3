"""A session's trace read from the trace backend's query API (Jaeger's `/api/traces/{id}`),
bounded in size and time, as the flat list of spans GET /api/v1/sessions/{id}/trace answers (the console draws it).

The backend is the operator's (`ADMIN_TRACE_QUERY_URL`), never a config's: no egress policy
applies, but its answer is read as any other: at most `ADMIN_TRACE_MAX_BYTES`, within
`ADMIN_TRACE_TIMEOUT_S`, redirects not followed, the environment's proxies not used.
"""

import asyncio
import json
from typing import Any

import httpx
from pydantic import BaseModel, Field

AttributeValue = str | int | float | bool


class TraceSpan(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ms: float = Field(description="From the trace's first span.")
    duration_ms: float
    attributes: dict[str, AttributeValue]
    error: bool


class SessionTrace(BaseModel):
    trace_id: str
    spans: list[TraceSpan] = Field(description="Ordered by start.")


class TraceNotFound(Exception):
    """The backend has no such trace (not yet, or no longer)."""


class TraceBackendError(Exception):
    """The backend did not answer, answered too much, or answered nonsense."""


async def read_trace(
    query_url: str, trace_id: str, *, max_bytes: int, timeout_s: float
) -> SessionTrace:
    url = f"{query_url.rstrip('/')}/api/traces/{trace_id}"
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url, timeout=timeout_s) as response,
        ):
            if response.status_code == 404:
                raise TraceNotFound(trace_id)
            if response.status_code != 200:
                raise TraceBackendError(f"the trace backend answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise TraceBackendError(
                        f"the trace is larger than {max_bytes} bytes (ADMIN_TRACE_MAX_BYTES)"
                    )
    except TimeoutError:
        raise TraceBackendError(
            f"the trace backend did not answer within {timeout_s:g}s (ADMIN_TRACE_TIMEOUT_S)"
        ) from None
    except httpx.HTTPError as exc:
        raise TraceBackendError(f"the trace backend is unreachable: {type(exc).__name__}") from None
    try:
        return from_jaeger(trace_id, json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise TraceBackendError(
            f"the trace backend's answer is not a Jaeger trace: {exc}"
        ) from None


def from_jaeger(trace_id: str, answer: dict[str, Any]) -> SessionTrace:
    """Jaeger's query JSON (`{"data": [{"spans": [...], "processes": {...}}]}`, times in µs)
    as that route answers."""
    traces = answer.get("data") or []
    if not traces:
        raise TraceNotFound(trace_id)
    found = traces[0]
    processes = found.get("processes") or {}
    spans = found.get("spans") or []
    origin = min((span["startTime"] for span in spans), default=0)
    converted = [_span(span, processes, origin) for span in spans]
    converted.sort(key=lambda span: (span.start_ms, -span.duration_ms))
    return SessionTrace(trace_id=found.get("traceID", trace_id), spans=converted)


def _span(span: dict[str, Any], processes: dict[str, Any], origin: int) -> TraceSpan:
    parent = next(
        (ref["spanID"] for ref in span.get("references") or [] if ref.get("refType") == "CHILD_OF"),
        None,
    )
    attributes: dict[str, AttributeValue] = {}
    for tag in span.get("tags") or []:
        value = tag.get("value")
        if isinstance(value, str | int | float | bool):
            attributes[str(tag["key"])] = value
    error = attributes.get("error") is True or attributes.get("otel.status_code") == "ERROR"
    process = processes.get(str(span.get("processID")), {})
    return TraceSpan(
        span_id=span["spanID"],
        parent_span_id=parent,
        name=span["operationName"],
        service=process.get("serviceName", ""),
        start_ms=round((span["startTime"] - origin) / 1000, 3),
        duration_ms=round(span["duration"] / 1000, 3),
        attributes=attributes,
        error=error,
    )
