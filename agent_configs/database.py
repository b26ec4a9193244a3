"""One place that opens the MongoDB connection, so every process uses the same options."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from agent_configs.errors import DatabaseUnavailable
from agent_configs.settings import Settings


def open_client(uri: str, timeout_ms: int = 3000) -> AsyncMongoClient:
    """A client that fails fast: an unreachable database is an error in seconds, not a hang.

    `tz_aware` keeps timestamps as aware UTC datetimes on the way back from BSON.
    """
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10_000),
        appname="switchboard",
    )


def open_database(settings: Settings) -> AsyncDatabase:
    if not settings.mongo_uri:
        raise RuntimeError("MONGO_URI is not set: start the local stack with `make dev` or set it")
    return open_client(settings.mongo_uri, settings.mongo_timeout_ms)[settings.mongo_db]


@contextmanager
def database_errors() -> Iterator[None]:
    """An unreachable database becomes DatabaseUnavailable, with the first line of why."""
    try:
        yield
    except ConnectionFailure as exc:
        raise DatabaseUnavailable(str(exc).split(",")[0]) from exc


def bson_now() -> datetime:
    """UTC, truncated to milliseconds: what BSON keeps, so a round trip compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
