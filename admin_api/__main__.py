"""`python -m admin_api`: serve the admin API with uvicorn on ADMIN_API_HOST:ADMIN_API_PORT."""

import sys

import uvicorn

from admin_api.app import create_app
from admin_api.settings import get_admin_settings
from agent_configs.settings import UnsafeSettings

GRACEFUL_SHUTDOWN_S = 15
"""After SIGTERM, how long open requests may still finish (uvicorn waits for them without end
otherwise); then the app shuts down, its outbox flushing or spooling within CLOSE_DEADLINE_S.
Both fit in Kubernetes' 30 s grace period (k8s/base/admin-api.yaml, tests/k8s): a SIGKILL
before the outbox closes loses the events still in memory."""


def main() -> None:
    settings = get_admin_settings()
    try:
        app = create_app(settings)
    except UnsafeSettings as exc:  # one line that says what to set, not a traceback
        sys.exit(f"error: {exc}")
    uvicorn.run(
        app,
        host=settings.admin_api_host,
        port=settings.admin_api_port,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
