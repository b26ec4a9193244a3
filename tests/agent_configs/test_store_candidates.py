"""Candidate versions in the store: filed in the history without going live, activated later,
and never made current by the roll forward that repairs a writer that died midway."""

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.errors import AgentAlreadyExists, VersionConflict
from agent_configs.models import AgentStatus
from agent_configs.store import ConfigStore
from tests.factories import support_config

SUPPORT = "support-agent-v1"


async def test_a_candidate_is_filed_after_the_newest_version_and_goes_live_only_when_activated(
    store: ConfigStore,
) -> None:
    await store.create(support_config(greeting="One."))
    candidate = await store.file_candidate(support_config(greeting="Two."), expected_version=1)
    assert candidate.version == 2
    current = await store.get(SUPPORT)
    assert (current.version, current.greeting) == (1, "One.")
    assert [(v.version, v.candidate) for v in await store.versions(SUPPORT)] == [
        (2, True),
        (1, False),
    ]
    # A save meanwhile is numbered after the candidate, and goes live as before.
    saved = await store.update(support_config(greeting="Three."), expected_version=1)
    assert saved.version == 3 and (await store.get(SUPPORT)).greeting == "Three."
    late = await store.file_candidate(support_config(greeting="Four."), expected_version=3)
    assert late.version == 4

    activated = await store.activate(SUPPORT, 4, expected_version=3)
    assert (activated.version, activated.greeting) == (4, "Four.")
    assert (await store.get(SUPPORT)).version == 4
    assert [(v.version, v.candidate) for v in await store.versions(SUPPORT)] == [
        (4, False),
        (3, False),
        (2, True),
        (1, False),
    ]
    with pytest.raises(VersionConflict):
        await store.activate(SUPPORT, 2, expected_version=3)
    # Candidate 2 was overtaken by a save: it goes live as a new version, as a rollback would.
    refiled = await store.activate(SUPPORT, 2)
    assert (refiled.version, refiled.greeting) == (5, "Two.")
    assert (await store.get(SUPPORT)).version == 5


async def test_an_activation_keeps_the_status_of_the_current_version(store: ConfigStore) -> None:
    await store.create(support_config())
    await store.file_candidate(support_config(greeting="Two."), expected_version=1)
    await store.set_status(SUPPORT, AgentStatus.PAUSED)  # version 3, after the candidate
    activated = await store.activate(SUPPORT, 2)
    assert (activated.version, activated.status, activated.greeting) == (
        4,
        AgentStatus.PAUSED,
        "Two.",
    )


async def test_the_roll_forward_never_makes_a_candidate_current(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    """A writer that died after filing version 2 (committed), then a candidate filed on top:
    the next write rolls forward to 2, not to the newer candidate 3."""
    await store.create(support_config(greeting="One."))
    one = await store.get(SUPPORT)
    await store.update(support_config(greeting="Two."), expected_version=1)
    await database["agent_configs"].replace_one(
        {"agent_id": SUPPORT}, one.model_dump(mode="python")
    )
    with pytest.raises(VersionConflict) as caught:
        await store.file_candidate(support_config(greeting="Three."), expected_version=1)
    assert caught.value.current == 2
    await store.file_candidate(support_config(greeting="Three."), expected_version=2)

    with pytest.raises(AgentAlreadyExists):  # a create that loses rolls forward too
        await store.create(support_config(greeting="Again."))
    current = await store.get(SUPPORT)
    assert (current.version, current.greeting) == (2, "Two.")
    saved = await store.update(support_config(greeting="Four."), expected_version=2)
    assert (saved.version, (await store.get(SUPPORT)).greeting) == (4, "Four.")


async def test_an_activation_that_died_before_replacing_the_current_version_is_rolled_forward(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    await store.create(support_config(greeting="One."))
    await store.file_candidate(support_config(greeting="Two."), expected_version=1)
    # The activation's first step only: marked activated in the history.
    await database["agent_config_versions"].update_one(
        {"agent_id": SUPPORT, "version": 2}, {"$set": {"candidate": False}}
    )
    assert (await store.get(SUPPORT)).version == 1
    with pytest.raises(VersionConflict) as caught:
        await store.update(support_config(greeting="Based on one."), expected_version=1)
    assert caught.value.current == 2
    current = await store.get(SUPPORT)
    assert (current.version, current.greeting) == (2, "Two.")
