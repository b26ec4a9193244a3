"""The order of the entrypoint's first steps, on a stand-in for livekit's JobContext (no
services: the room connection fails at once, before anything is read)."""

from types import SimpleNamespace

import pytest

from worker import server
from worker.settings import get_worker_settings


class RoomUnreachable(Exception):
    pass


class StandInJob:
    """What the entrypoint reads of a JobContext before its first database call."""

    def __init__(self) -> None:
        room = SimpleNamespace(name="room-order", metadata="")
        self.job = SimpleNamespace(id="job-order", metadata="", room=room)
        self.room = room
        self.proc = SimpleNamespace(userdata={})
        self.services_when_connecting: object = "not connected"

    async def connect(self) -> None:
        self.services_when_connecting = server._services
        raise RoomUnreachable("the room connection failed")


@pytest.fixture
def fresh_job_process(monkeypatch: pytest.MonkeyPatch):
    """A job process as livekit starts it: no services yet, settings from the environment."""
    monkeypatch.setenv("MONGO_URI", "mongodb://127.0.0.1:1")  # never reached by this test
    monkeypatch.setattr(server, "_services", None)
    get_worker_settings.cache_clear()
    yield
    get_worker_settings.cache_clear()


async def test_the_room_connection_starts_before_the_job_process_sets_up_its_services(
    fresh_job_process: None,
) -> None:
    """The connection runs in livekit's native client, off this loop: set off first, it hides
    the services' set-up (settings, database client, catalog; 14 ms median in a fresh job
    process, bench/session_start) instead of coming after it on every session start."""
    job = StandInJob()
    with pytest.raises(RoomUnreachable):
        await server.entrypoint(job)  # type: ignore[arg-type]
    assert job.services_when_connecting is None
