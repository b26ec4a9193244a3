"""`python -m admin_api`: serve the admin API with uvicorn on ADMIN_API_HOST:ADMIN_API_PORT."""

import uvicorn

from admin_api.app import create_app
from admin_api.settings import get_admin_settings


def main() -> None:
    settings = get_admin_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.admin_api_host,
        port=settings.admin_api_port,
        proxy_headers=True,
        server_header=False,
    )


if __name__ == "__main__":
    main()
