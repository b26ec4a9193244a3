"""Liveness, readiness and metrics: no API key, for probes and scrapers.

`/healthz` answers as long as the process serves requests; `/readyz` also needs the
database (503 with Retry-After otherwise, so a load balancer stops sending traffic).
"""

from fastapi import APIRouter, Response
from pydantic import BaseModel

from admin_api.deps import ServicesDep
from admin_api.problems import problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses=problem_responses(503))
async def readyz(services: ServicesDep) -> Health:
    """Ready once the database answers (and indexes / the bootstrap key are in place)."""
    await services.ping()
    await services.prepare()
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text",
        }
    },
)
async def metrics(services: ServicesDep) -> Response:
    body, content_type = services.metrics.exposition()
    return Response(body, media_type=content_type)
