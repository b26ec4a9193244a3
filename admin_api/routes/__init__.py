"""One module per resource, each under /api/v1 (health and metrics at the root).

Each router carries the full prefix itself, rather than getting it from `include_router`,
so a route's own `path` is its full template: that is what the latency metrics are labelled
with, whatever FastAPI version mounts the routers.
"""

API_V1 = "/api/v1"
