"""A worker pool (WORKER_AGENT_TYPES) serves only its own agent types and never drops a job."""

from collections.abc import Iterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    RunningWorker,
    launched_workers,
    wait_for_session_end,
)

pytestmark = pytest.mark.usefixtures("text_only_agents")

POOL = "sales-agent-v1,support-agent-v1"


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    """Overrides the shared worker: this one is the `sales+support` pool with its own name."""
    with launched_workers(
        endpoints,
        worker_database.name,
        tmp_path_factory,
        prefix="sb-pool",
        extra_env={"WORKER_AGENT_TYPES": POOL},
    ) as (running,):
        yield running


async def test_a_type_outside_the_pool_is_skipped_for_the_pool_default(
    client: RoomClient, worker_database: AsyncDatabase
) -> None:
    await client.join({"purpose": "interview", "user_id": "u-pool"})
    assert await client.routed_agent() == ("support-agent-v1", "default")
    await client.leave()
    trail = (await wait_for_session_end(worker_database, client.room_name))["routing"]["trail"]
    assert {
        "strategy": "purpose",
        "agent_id": "pte-interview-agent-v1",
        "outcome": "skipped",
        "reason": "not served by this worker pool (WORKER_AGENT_TYPES)",
    } in trail


async def test_an_explicit_request_for_another_pool_is_rejected_not_dropped(
    client: RoomClient, worker: RunningWorker
) -> None:
    await client.join({"agent_id": "pte-interview-agent-v1", "user_id": "u-elsewhere"})
    await client.wait_for(
        lambda: "rejecting job for pte-interview-agent-v1" in worker.log_path.read_text(),
        60,
        "the worker's rejection of the job",
    )
    assert client.agent_attributes() == {}, "this pool must not take the job"
