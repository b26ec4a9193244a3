"""Session-wide real services: the same devstack `make dev` runs, started once per test run.

With MONGO_URI / LIVEKIT_URL set, those services are used instead and nothing is started.
Each test gets a database of its own, dropped afterwards.
"""

import uuid
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.store import ConfigStore
from devstack import DEFAULT_ROOT, Devstack, Endpoints
from devstack.trace_backend import TraceBackend

# Fixtures that start (or need) a real service or a binary `make build` builds. A test that uses
# none of them runs in `make check` (`-m "not services"`); a module that starts its own processes
# says so with `pytestmark = pytest.mark.services`.
SERVICE_FIXTURES = frozenset({"endpoints", "trace_backend"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each phase's report on the test item (`item.report_call`), so a fixture can tell after
    the test whether it failed and attach what the services logged (tests/worker, tests/console)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    with Devstack(DEFAULT_ROOT, run_dir=tmp_path_factory.mktemp("devstack")) as running:
        yield running


@pytest.fixture(scope="session")
def trace_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceBackend]:
    """Jaeger (devstack/trace_backend.py), started by the first test that asks for it and
    stopped at the end of the run, whatever the tests did."""
    stack = Devstack(DEFAULT_ROOT, run_dir=tmp_path_factory.mktemp("jaeger"))
    try:
        yield stack.start_jaeger()
    finally:
        stack.stop()


@pytest.fixture
def database_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def database(endpoints: Endpoints, database_name: str) -> AsyncIterator[AsyncDatabase]:
    client = open_client(endpoints.mongo_uri)
    try:
        yield client[database_name]
    finally:
        await client.drop_database(database_name)
        await client.close()


@pytest.fixture
async def store(database: AsyncDatabase) -> ConfigStore:
    config_store = ConfigStore(database)
    await config_store.ensure_indexes()
    return config_store
