"""`python -m dispatcher`: deliver the events outbox to the webhooks until SIGTERM."""

import asyncio
import logging
import sys

from pydantic import ValidationError

from agent_configs.telemetry import setup_tracing
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = DispatcherSettings()
    except ValidationError as exc:  # one line per bad variable, not a traceback
        sys.exit(f"error: invalid settings:\n{exc}")
    if not settings.mongo_uri:
        sys.exit("error: MONGO_URI is not set: start the local stack with `make dev` or set it")
    setup_tracing("switchboard-dispatcher")  # only when OTEL_* asks: delivery spans
    asyncio.run(Dispatcher(settings).run())


if __name__ == "__main__":
    main()
