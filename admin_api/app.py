"""The FastAPI application: `create_app(settings)` wires settings, services, routes and errors.

    uvicorn --factory admin_api.app:create_app     # or: python -m admin_api

Resources live under /api/v1; /healthz, /readyz and /metrics stay at the root for probes.
OpenAPI at /openapi.json; the web console at /console/ and Swagger UI at /docs, both from the
console's build (console.py); OPTIONS on any path lists its methods (allow.py).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from livekit import api

from admin_api.allow import AllowMiddleware
from admin_api.body_limit import BodyLimitMiddleware
from admin_api.console import install_console
from admin_api.deps import mark_if_match_required
from admin_api.metrics import ApiMetrics, MetricsMiddleware
from admin_api.problems import FieldProblem, Problem, install_problem_handlers
from admin_api.redispatch import Redispatcher, RedispatchPolicy
from admin_api.routes import (
    agents,
    analytics,
    channels,
    dead_letters,
    evals,
    events,
    health,
    me,
    models,
    routing,
    sessions,
    tokens,
    traces,
    webhooks,
    widget,
)
from admin_api.services import Services
from admin_api.settings import AdminSettings, get_admin_settings
from admin_api.widget_cors import WidgetCorsMiddleware
from agent_configs import telemetry

DESCRIPTION = """Agent types with versions and lifecycle, routing rules with explain, room tokens,
sessions, analytics and the audit trail of Switchboard.

Authenticate with `Authorization: Bearer <API key>`; keys come from
`python -m admin_api.keys create --name NAME --role admin|viewer|token`.
Errors are RFC 9457 problem details (`application/problem+json`)."""


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    """Raises `UnsafeSettings` for LiveKit's dev keys without SWITCHBOARD_DEV_MODE=true: here,
    so that `python -m admin_api`, `uvicorn --factory` and an embedding app all refuse them."""
    settings = settings or get_admin_settings()
    settings.check_safe_for_production()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.open(settings, metrics)
        app.state.services = services
        await services.prepare_quietly()
        sweeping = _start_redispatch(settings, services)
        adopting = asyncio.create_task(services.outbox.adopt_forever(), name="outbox-adoption")
        try:
            yield
        finally:
            for task in (sweeping, adopting):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await services.close()

    # Requests are traced by FastAPI's own OpenTelemetry support (0.165: a server span per
    # request named by its route, the caller's traceparent continued, spans for dependencies,
    # the endpoint and serialization) on the provider set up here, only when OTEL_* asks for
    # export; without one FastAPI passes requests straight through. Events a request writes
    # carry its span as their traceparent (cloudevents.py), so their deliveries join it.
    telemetry.setup_tracing("switchboard-admin-api")
    app = FastAPI(
        telemetry={"exclude": _is_probe},
        title="Switchboard Admin API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_console from local files: FastAPI's loads a CDN
        redoc_url=None,
    )
    for router in (
        agents.router,
        sessions.router,
        analytics.router,
        traces.router,
        evals.router,
        routing.router,
        tokens.router,
        events.router,
        dead_letters.router,
        me.router,
        models.router,
        webhooks.router,
        channels.router,
        widget.router,
        widget.script_router,
        health.router,
    ):
        app.include_router(router)
    install_console(app, settings)
    install_problem_handlers(app)
    app.add_middleware(AllowMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.admin_api_max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=["ETag", "Location", "Retry-After"],
            max_age=600,
        )
    # Outside CORSMiddleware and AllowMiddleware: the widget's preflight is answered for the
    # origins widget bindings list, which ADMIN_API_CORS_ORIGINS does not name.
    app.add_middleware(
        WidgetCorsMiddleware,
        path=widget.WIDGET_TOKEN_PATH,
        preflight=widget.widget_preflight,
        state_key=widget.ALLOWED_ORIGIN_STATE,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


def _is_probe(scope: Any) -> bool:
    """Kubernetes' probes and Prometheus' scrapes every few seconds: not worth a trace each."""
    return scope.get("path") in PROBES


def _start_redispatch(settings: AdminSettings, services: Services) -> "asyncio.Task[None] | None":
    """The sweep that dispatches again rooms LiveKit gave up on (redispatch.py)."""
    if not settings.livekit_url or settings.admin_api_redispatch_after_s <= 0:
        return None
    policy = RedispatchPolicy(
        after_s=settings.admin_api_redispatch_after_s,
        interval_s=settings.admin_api_redispatch_interval_s,
        backoff_s=settings.admin_api_redispatch_backoff_s,
        backoff_max_s=settings.admin_api_redispatch_backoff_max_s,
    )
    livekit_url = settings.livekit_url
    redispatcher = Redispatcher(
        lambda: api.LiveKitAPI(
            livekit_url, settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
        ),
        {settings.agent_name, *settings.admin_api_agent_names.values()},
        policy,
        services.metrics.redispatch,
        services.database,
    )
    return asyncio.create_task(redispatcher.run(), name="redispatch")


def _openapi_with_problems(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the Problem component every error response refers to, and
    If-Match marked required where the API requires it."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem.pop("$defs", {}))
        components["Problem"] = problem
        components.setdefault("FieldProblem", FieldProblem.model_json_schema())
        mark_if_match_required(schema)
        app.openapi_schema = schema
    return app.openapi_schema
