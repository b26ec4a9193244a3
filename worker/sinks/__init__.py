"""Turn sinks: everything a session sends out reads the session's start, each finished turn
and the session's end; none of it lives in the conversation.

The conversation (worker/conversation.py) builds each `Turn` (worker/turn.py) once and hands
the same object to every sink in order; a sink never asks the conversation for more. Records
(MongoDB, through the no-loss writer), the room's `agent-turn`, the CloudEvents of the outbox,
the Prometheus metrics (and the spans) are each one sink, in one file of this package.

Adding a sink is one file here: a subclass of `Sink` decorated with `@register`. Every module
of this package is imported when the package is (so job processes, forked from a forkserver
that imported the worker, have them all), and each session gets a fresh instance of every
registered sink.

The interface (stable: other sinks are written against it):

    @register
    class MySink(Sink):
        name = "mine"      # unique; in logs
        order = 60         # sinks run in ascending order (room 10, records 20, events 30,
                           # metrics 40); ties by name
        def __init__(self, outputs: SessionOutputs) -> None: ...   # one per session

        def session_started(self, start: SessionStart) -> None
            # once, before the agent starts (the session record, `session.started`)
        def transcript_changed(self, transcript: Transcript) -> None
            # a message (user's, agent's, the greeting, a goodbye) was added
        def turn_replied(self, turn: Turn) -> None
            # the reply has ended for the user; its fields may still be coming
        async def turn_finished(self, turn: Turn) -> None
            # the turn is complete: `turn.status` is "ok" or "failed", `turn.fields` filled,
            # `turn.waterfall()` has every stage; awaited in order (the room sink publishes
            # `agent-turn` before the summary)
        def session_ended(self, end: SessionEnd) -> None
            # once, at job shutdown (the room is gone by then)

Every hook has a no-op default. A hook that raises is logged and skipped: one broken sink
never stops the others or the conversation. Hooks run on the session's event loop and must
not block it (writes go through `outputs.submit`, which only queues).
"""

import importlib
import logging
import pkgutil
from typing import ClassVar

from worker.outputs import SessionOutputs
from worker.transcript import Transcript
from worker.turn import SessionEnd, SessionStart, Turn

__all__ = [
    "SessionEnd",
    "SessionOutputs",
    "SessionStart",
    "Sink",
    "Sinks",
    "Transcript",
    "Turn",
    "register",
    "registered",
]

logger = logging.getLogger("switchboard.sinks")


class Sink:
    """A reader of the session's pipeline; override the hooks it needs."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 100

    def __init__(self, outputs: SessionOutputs) -> None:
        self.outputs = outputs

    def session_started(self, start: SessionStart) -> None:
        return None

    def transcript_changed(self, transcript: Transcript) -> None:
        return None

    def turn_replied(self, turn: Turn) -> None:
        return None

    async def turn_finished(self, turn: Turn) -> None:
        return None

    def session_ended(self, end: SessionEnd) -> None:
        return None


_REGISTERED: dict[str, type[Sink]] = {}


def register(sink: type[Sink]) -> type[Sink]:
    """Class decorator: every session gets an instance of `sink`."""
    if not sink.name:
        raise ValueError(f"{sink.__qualname__} has no `name`")
    if _REGISTERED.get(sink.name, sink) is not sink:
        raise ValueError(f"two sinks are named {sink.name!r}")
    _REGISTERED[sink.name] = sink
    return sink


def registered() -> list[type[Sink]]:
    return sorted(_REGISTERED.values(), key=lambda s: (s.order, s.name))


class Sinks:
    """A session's sinks, called in order; each hook's failure is the sink's own."""

    def __init__(self, outputs: SessionOutputs, kinds: list[type[Sink]] | None = None) -> None:
        self.all = [kind(outputs) for kind in (registered() if kinds is None else kinds)]
        self._log = outputs.log

    def session_started(self, start: SessionStart) -> None:
        for sink in self.all:
            try:
                sink.session_started(start)
            except Exception:
                self._log.exception("sink %s failed at the session start", sink.name)

    def transcript_changed(self, transcript: Transcript) -> None:
        for sink in self.all:
            try:
                sink.transcript_changed(transcript)
            except Exception:
                self._log.exception("sink %s failed on the transcript", sink.name)

    def turn_replied(self, turn: Turn) -> None:
        for sink in self.all:
            try:
                sink.turn_replied(turn)
            except Exception:
                self._log.exception("sink %s failed on the reply of turn %d", sink.name, turn.index)

    async def turn_finished(self, turn: Turn) -> None:
        for sink in self.all:
            try:
                await sink.turn_finished(turn)
            except Exception:
                self._log.exception("sink %s failed on turn %d", sink.name, turn.index)

    def session_ended(self, end: SessionEnd) -> None:
        for sink in self.all:
            try:
                sink.session_ended(end)
            except Exception:
                self._log.exception("sink %s failed at the session end", sink.name)


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_all()
