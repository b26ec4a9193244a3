"""The AgentServer: prewarm, job requests, the entrypoint, load reporting and drain.

One server registers ONE agent name (`AGENT_NAME`); the agent type is chosen per room inside
the entrypoint by the routing chain. Job processes are forkserver children, so everything a
job needs is created at module level or lazily inside the job's own event loop.
"""

import asyncio
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, JobRequest
from livekit.plugins import silero
from opentelemetry import context as otel_context
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.capacity import CapacityGuard, SessionSlot
from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.channels import channel_of_job
from agent_configs.database import open_client
from agent_configs.errors import DatabaseUnavailable
from agent_configs.eval_runs import eval_run_of_job
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.routing.availability import NOT_IN_POOL, PoolAvailability
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.intents import match_intent
from agent_configs.routing.pin import (
    AgentPin,
    pin_from_job_metadata,
    pinned_config,
    pinned_decision,
    with_pin_skipped,
)
from agent_configs.routing.router import Router, RoutingDecision
from agent_configs.routing.rules import RulesStore
from agent_configs.snapshot import CatalogSnapshot
from agent_configs.store import ConfigStore
from agent_configs.templates import render
from worker import metrics
from worker.conversation import Conversation, TransferRefused
from worker.memory import load_past_messages
from worker.metadata import routing_context, trusted_user_id
from worker.providers import ProviderError
from worker.records import (
    SESSIONS,
    Record,
    RecordWriter,
    abort_stale_sessions,
    forget_heartbeat,
    replay_spool,
    sweep_is_due,
    write_heartbeat,
)
from worker.session import ConfiguredAgent, build_models, for_frontend, new_session, room_options
from worker.settings import WorkerSettings, get_worker_settings
from worker.tracing import SessionTrace, child_span, session_trace
from worker.turns import Message

logger = logging.getLogger("switchboard.worker")

PARTICIPANT_WAIT_S = 15.0
CLAIM_ATTEMPTS = 3
SHUTDOWN_PROCESS_TIMEOUT_S = 90.0
"""How long a job process has to end once livekit tells it to (at the end of the drain, or when
WORKER_DRAIN_TIMEOUT_S runs out): its session's end fits (the spool replay begun at its start,
REPLAY_BUDGET_S 15 s; the last turns, 30 s; the summary, 30 s; its records written or spooled
within 10 s; its heartbeat removed within 2 s), then livekit kills it and what is still in
memory is lost. The pod's grace period covers WORKER_DRAIN_TIMEOUT_S plus this (tests/k8s)."""


@dataclass
class ProcessServices:
    """Per job process: one database client, catalog, router and record writer."""

    settings: WorkerSettings
    database: AsyncDatabase
    store: ConfigStore
    catalog: Catalog
    capacity: CapacityGuard
    router: Router
    writer: RecordWriter


_services: ProcessServices | None = None


async def process_services() -> ProcessServices:
    global _services
    if _services is None:
        settings = get_worker_settings()
        if not settings.mongo_uri:
            raise RuntimeError("MONGO_URI is not set: run `make dev` or export it")
        database = open_client(settings.mongo_uri, settings.mongo_timeout_ms)[settings.mongo_db]
        store = ConfigStore(database)
        snapshot = CatalogSnapshot(settings.catalog_dir)
        catalog = Catalog(
            store,
            RulesStore(database),
            ChangeStamp(database),
            max_age_s=settings.routing_rules_ttl_s,
            snapshot=snapshot,
        )
        capacity = CapacityGuard(database, stale_after_s=settings.session_stale_after_s)

        async def active_sessions(agent_id: str) -> int:
            # Offline, sessions of a type cannot be counted across workers: a room served
            # beyond max_concurrent_sessions during an outage beats a room left without agent.
            return 0 if catalog.offline else await capacity.in_use(agent_id)

        availability = PoolAvailability(
            catalog.availability(active_sessions, settings.egress), settings.pool
        )
        router = Router(catalog, availability)
        writer = RecordWriter(database, settings.spool_dir)
        _services = ProcessServices(settings, database, store, catalog, capacity, router, writer)
    return _services


# -- server-level hooks (run in the main worker process) ---------------------------------


def prewarm(proc: JobProcess) -> None:
    """With `WORKER_PREWARM_VAD`, load the VAD in every idle process, before any job is
    assigned to it: voice sessions start ~50 ms sooner, every process holds ~20 MB more."""
    if get_worker_settings().worker_prewarm_vad:
        proc.userdata["vad"] = silero.VAD.load()


def session_load(server: AgentServer) -> float:
    """Load as the share of session slots in use, scaled to LiveKit's `agents.target_load`.

    Sessions, not CPU: predictable on a shared node. livekit-server (v1.13.5) offers a job
    only to a worker whose last reported load is *below* `target_load` (0.7 by default), so
    the plain share `sessions / WORKER_MAX_SESSIONS` stopped a worker of 8 at 6 rooms
    (6/8 = 0.75) and rooms 7 and 8 found no worker. Reported as `target_load * share`, the
    load stays below the target until the last slot is taken: with 8 slots, 7 sessions
    report 0.6125 (the 8th room is offered) and 8 report 0.7 (the 9th is not). LiveKit
    still sends new rooms to the least loaded worker. Jobs accepted but not yet running
    count too, so a burst does not overshoot between two load reports (every 2.5 s)."""
    settings = get_worker_settings()
    in_use = len(server.active_jobs) + _admission.accepting
    return min(1.0, settings.worker_target_load * in_use / settings.worker_max_sessions)


class Admission:
    """This worker's session capacity, decided per job request (main process).

    livekit-agents' own check counts each request in flight on an idle worker as
    `load_threshold / idle processes` of load, so a burst of rooms on an idle two-process
    worker was refused after two and LiveKit dropped the rest. Its threshold is therefore
    off, and capacity is counted here: running jobs plus jobs accepted but not yet running.
    """

    def __init__(self) -> None:
        self.server: AgentServer | None = None
        self.accepting = 0

    def full(self) -> bool:
        running = len(self.server.active_jobs) if self.server else 0
        return running + self.accepting >= get_worker_settings().worker_max_sessions


_admission = Admission()


async def on_request(request: JobRequest) -> None:
    """Accept, unless this worker is full or an explicit agent_id its pool does not serve was
    asked for. Rejecting without terminating lets another worker with the same agent name
    take the job, so a job is never accepted and then dropped."""
    pool = get_worker_settings().pool
    job = RoutingContext.from_metadata(request.job.metadata)
    pin, _ = pin_from_job_metadata(job)
    asked = pin.agent_id if pin is not None else job.agent_id
    if pool and asked and asked not in pool:
        logger.info("rejecting job for %s: %s", asked, NOT_IN_POOL)
        await request.reject(terminate=False)
        return
    if _admission.full():
        logger.info("rejecting job: worker full (WORKER_MAX_SESSIONS)")
        await request.reject(terminate=False)
        return
    _admission.accepting += 1
    try:
        # In the agent's token: the attribute is there the moment the agent joins, so a
        # frontend or an operator who knows the room finds its session at once.
        await request.accept(attributes={SESSION_ID_ATTRIBUTE: new_session_id()})
    finally:
        _admission.accepting -= 1


SESSION_ID_ATTRIBUTE = "switchboard.session_id"


def new_session_id() -> str:
    return f"sess_{uuid.uuid4().hex[:16]}"


def _session_id_of(ctx: JobContext) -> str:
    """The id `on_request` put in the agent's token; a new one for a job that did not come
    through it (livekit's console mode, a test's fake job)."""
    try:
        given = (ctx.token_claims().attributes or {}).get(SESSION_ID_ATTRIBUTE)
    except Exception:  # no token to read
        given = None
    return given or new_session_id()


# -- the entrypoint (runs in a job process) ---------------------------------------------


async def entrypoint(ctx: JobContext) -> None:
    """One room: route it (while the room connection is set up), refuse it cleanly if no
    agent can serve it, or open the conversation, start the session and record its start."""
    started_at = datetime.now(UTC)
    session_id = _session_id_of(ctx)
    # The session's trace (worker/tracing.py; a no-op span unless OTEL_* asks for export) is
    # current for the rest of this task and every task it starts: routing, records and
    # livekit's AgentSession nest under it. Not detached: the task ends with the entrypoint.
    traced = SessionTrace.begin(session_id, ctx.job.room.name, ctx.job.id)
    otel_context.attach(traced.context)
    # The connection first: it runs in livekit's native client, off this loop, while the
    # process sets up its services (settings, database client, catalog): 14 ms median in a
    # fresh job process (bench/session_start), on the path to the greeting when they came
    # first.
    connecting = asyncio.create_task(ctx.connect())
    await asyncio.sleep(0)
    try:
        services = await process_services()
    except BaseException:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        raise
    routed = await _route_while_connecting(ctx, services, session_id, connecting)
    ready = await _ready_or_refused(ctx, services, session_id, started_at, routed)
    if ready is None:
        traced.end("refused")
        return
    running = await _open_conversation(ctx, services, session_id, routed, ready)
    running.trace = traced
    ctx.add_shutdown_callback(running.finish)
    _running[ctx.job.id] = running
    # Before the session starts, so `session.started` is the session's first event (seq 0)
    # and the active-sessions gauge `finish` decrements was incremented: recorded after the
    # start, a turn answered while the agent's attributes were still being set (a busy CPU,
    # a scripted model) came first, and webhooks got `turn.completed` before it (seen in CI).
    _record_start(ctx, running, ready, started_at)
    await _start_session(ctx, running.conversation, routed, ready)
    # Not before: the user should not wait on database chores of other sessions.
    running.housekeeping = asyncio.create_task(_tidy_up_quietly(services))


@dataclass
class _Routed:
    """What the room's metadata said and what routing made of it."""

    context: RoutingContext
    source: str | None
    participant: rtc.RemoteParticipant | None
    prepared: "Prepared | DatabaseUnavailable"


@dataclass
class _Ready:
    """A room an agent can serve: the decision, its config, the capacity slot, the agent."""

    decision: RoutingDecision
    config: AgentConfig
    slot: int | None
    agent: ConfiguredAgent
    offline: bool


@dataclass
class _RunningSession:
    """A session in progress and what its end must stop, release and write."""

    services: "ProcessServices"
    conversation: Conversation
    held: SessionSlot
    ready: _Ready
    heartbeat: "asyncio.Task[None]"
    housekeeping: "asyncio.Task[None] | None" = None
    trace: SessionTrace | None = None
    _finishing: "asyncio.Task[None] | None" = None
    _backstop: "asyncio.Task[None] | None" = None

    async def finish(self, reason: str) -> None:
        """Once, whoever calls first: livekit's shutdown callback or the backstop below."""
        if self._finishing is None:
            self._finishing = asyncio.create_task(self._finish_traced(reason))
        await asyncio.shield(self._finishing)

    def finish_even_if_the_room_hangs(self) -> None:
        """livekit runs the shutdown callbacks (`finish`) only once its `room.disconnect()`
        has returned; a disconnect that never returned would leave the session `active` and
        unreported until the supervisor kills the process 90 s later. From `on_session_end`
        (just before that disconnect) this ends the session anyway if `finish` has not begun
        in time. (The hang `make scale` showed was the heartbeat, below; this is the
        backstop for whatever else could hold the end.)"""
        self._backstop = asyncio.create_task(self._finish_unless_begun())

    async def _finish_unless_begun(self) -> None:
        await asyncio.sleep(ROOM_DISCONNECT_GRACE_S)
        if self._finishing is None:
            logger.warning(
                "the room's disconnect has not returned after %.0f s: ending the session "
                "without waiting for it",
                ROOM_DISCONNECT_GRACE_S,
            )
            await self.finish("room_disconnect_hung")

    async def _finish_traced(self, reason: str) -> None:
        """The end in the session's trace (its last records and `session.ended` carry it);
        the trace ends, and is sent, last."""
        if self.trace is None:
            await self._finish(reason)
            return
        with self.trace.current():
            await self._finish(reason)
        self.trace.end(reason)

    async def _finish(self, reason: str) -> None:
        """After the room is gone: every step is bounded, and a slow end says which step
        took the time (a replica's drain waits for it)."""
        steps: dict[str, float] = {}
        mark = time.monotonic()

        def took(step: str) -> None:
            nonlocal mark
            now = time.monotonic()
            steps[step], mark = round(now - mark, 3), now

        await _stop_beating(self.heartbeat)
        took("heartbeat")
        if self.housekeeping is not None:
            await _let_finish_or_cancel(self.housekeeping, HOUSEKEEPING_AT_END_S)
            took("housekeeping")
        try:
            await self.conversation.finish(reason)
            took("conversation")
        finally:
            metrics.ACTIVE_SESSIONS.labels(
                self.ready.config.agent_id, self.ready.decision.strategy or "none"
            ).dec()
            await self.held.release()
            await self.services.writer.close()
            took("records")
            await forget_heartbeat(self.services.database, self.conversation.session_id)
            took("heartbeat_removed")
            if sum(steps.values()) > SLOW_FINISH_S:
                logger.warning("slow session end: %s", steps)


async def _route_while_connecting(
    ctx: JobContext,
    services: "ProcessServices",
    session_id: str,
    connecting: "asyncio.Task[None]",
) -> _Routed:
    """The room connection goes first (`connecting`): once it is under way (off this loop, in
    livekit's native client), dispatch and room metadata let us route and build the agent
    meanwhile, so our work hides behind LiveKit's. Only when neither says anything (nor a
    pin) does routing wait for the participant's metadata, after the connection."""
    vad = ctx.proc.userdata.get("vad")
    context, source = routing_context(ctx.job.metadata, ctx.job.room.metadata)
    context = replace(context, room=ctx.job.room.name)  # the server's word, never the metadata's
    pin = _job_pin(ctx.job.metadata)
    if pin is not None and source is None:
        source = "job"  # a pin alone says enough: no need to wait for the participant
    if source is None:
        await connecting
        context, source, participant = await _read_metadata(ctx)
        context = replace(context, room=ctx.job.room.name)
        return _Routed(
            context, source, participant, await _prepare(services, context, session_id, vad, None)
        )
    preparing = asyncio.create_task(_prepare(services, context, session_id, vad, pin))
    try:
        await connecting
    except BaseException:
        await _abandon(services, preparing, session_id)
        raise
    return _Routed(context, source, None, await preparing)


async def _ready_or_refused(
    ctx: JobContext,
    services: "ProcessServices",
    session_id: str,
    started_at: datetime,
    routed: _Routed,
) -> _Ready | None:
    """The routed agent, or None once the room was told why nobody serves it and the
    refusal recorded (no database and no catalog, no type available, a provider error)."""
    log = logging.LoggerAdapter(logger, {"session_id": session_id, "room": ctx.room.name})
    prepared = routed.prepared
    if isinstance(prepared, DatabaseUnavailable):
        log.error(
            "refusing the room: the database is unreachable and this worker never read a catalog"
        )
        await _refuse(
            ctx,
            services,
            session_id,
            None,
            started_at,
            "database unavailable",
            tell_user=NO_DATABASE_MESSAGE,
        )
        return None
    decision, config, slot, agent = prepared
    offline = services.catalog.offline
    if offline:
        log.warning("database unreachable: serving from the last-known good catalog")
    log.info("routed: %s (metadata from %s)", decision.summary(), routed.source or "nowhere")
    metrics.ROUTING_DECISIONS.labels(decision.agent_id or "none", decision.strategy or "none").inc()
    if config is None or agent is None or isinstance(agent, ProviderError):
        if isinstance(agent, ProviderError):
            log.error("cannot run %s: %s", decision.agent_id, agent)
        reason = (
            f"provider error: {agent}"
            if isinstance(agent, ProviderError)
            else "no agent type available"
        )
        await _refuse(ctx, services, session_id, decision, started_at, reason)
        return None
    return _Ready(decision, config, slot, agent, offline)


async def _open_conversation(
    ctx: JobContext, services: "ProcessServices", session_id: str, routed: _Routed, ready: _Ready
) -> _RunningSession:
    """The AgentSession and the Conversation around it, the agent equipped with its tools,
    the capacity slot held (hand-offs and transfers move it) and kept alive by a heartbeat."""
    session = new_session(ready.config, ready.agent.models)
    context = routed.context
    vad = ctx.proc.userdata.get("vad")
    held = SessionSlot(services.capacity, session_id, ready.config.agent_id, ready.slot)
    conversation = Conversation(
        session_id=session_id,
        room=ctx.room,
        session=session,
        agent=ready.agent,
        routing=_decision_record(ready.decision, routed.source),
        user_id=context.user_id,
        writer=services.writer,
        build_agent=lambda cfg, history: _build_agent(
            services,
            for_frontend(cfg, context.raw.get("modality")),
            vad,
            context.user_id,
            history,
            _template_values(context, ready.decision, session_id),
        ),
        find_handoff=lambda current, text: _find_handoff(services, current, text),
        move_slot=lambda target: held.move_to(target.agent_id, target.max_concurrent_sessions),
        load_target=lambda agent_id: _load_transfer_target(services, agent_id),
        egress=services.settings.egress,
    )
    conversation.attach()
    await conversation.equip(ready.agent)
    _concluding[ctx.job.id] = conversation.conclude
    session.on("close", lambda _: ctx.shutdown("session closed"))
    heartbeat = asyncio.create_task(_heartbeat(services, held, session_id))
    return _RunningSession(services, conversation, held, ready, heartbeat)


async def _start_session(
    ctx: JobContext, conversation: Conversation, routed: _Routed, ready: _Ready
) -> None:
    """Start the agent in the room, greet, and tell the frontend which type it talks to."""
    config = ready.config
    identity = routed.participant.identity if routed.participant else None
    await conversation.session.start(
        ready.agent,
        room=ctx.room,
        room_options=room_options(config, identity, conversation.on_text_input),
    )
    greeting = ready.agent.config.greeting  # rendered (its placeholders filled), see _build_agent
    if greeting:
        _greet(conversation.session, greeting)
    attributes = {
        "switchboard.agent_id": config.agent_id,
        "switchboard.strategy": ready.decision.strategy or "",
        # a client that must not take the greeting for its first message's answer (channels/)
        # knows whether one comes: it is the agent's first transcription then
        "switchboard.greets": "true" if greeting else "false",
    }
    if ready.offline:  # the frontend may say so; the session is recorded as usual (spooled)
        attributes["switchboard.catalog"] = "last-known"
    traced = session_trace(conversation.session_id)
    if traced is not None and traced.trace_id:  # the console's link to the session's trace
        attributes["switchboard.trace_id"] = traced.trace_id
    await ctx.room.local_participant.set_attributes(attributes)


def _record_start(
    ctx: JobContext, running: _RunningSession, ready: _Ready, started_at: datetime
) -> None:
    config, strategy = ready.config, ready.decision.strategy or "none"
    metrics.SESSIONS_STARTED.labels(config.agent_id, strategy).inc()
    metrics.ACTIVE_SESSIONS.labels(config.agent_id, strategy).inc()
    trace_id = running.trace.trace_id if running.trace else None
    job = RoutingContext.from_metadata(ctx.job.metadata).raw
    eval_run = eval_run_of_job(job)
    channel = channel_of_job(job)
    if running.trace:
        running.trace.annotate(agent_id=config.agent_id, strategy=strategy)
    running.conversation.record_start(
        started_at,
        {
            "job_id": ctx.job.id,
            "worker_id": ctx.worker_id,
            # the console's link to the trace; the traceparent lets a sweep's `session.aborted` join the trace
            **(
                {"trace_id": trace_id, "traceparent": running.trace.traceparent}
                if trace_id and running.trace
                else {}
            ),
            "modalities": list(config.modalities),
            "memory_messages": ready.agent.remembered_messages,
            # an eval's room: live statistics (A/B analytics) leave the session out
            **({"eval_run_id": eval_run} if eval_run else {}),
            # a channel's room (Telegram, HTTP chat, AMQP, widget): the session shows its channel
            **({"channel": channel} if channel else {}),
            **({"catalog": "last-known"} if ready.offline else {}),
        },
    )


_concluding: dict[str, Callable[[], Awaitable[None]]] = {}
"""Job id -> what the session does at its end while the room is still connected."""

_running: dict[str, _RunningSession] = {}
"""Job id -> its running session, for the backstop `on_session_end` arms."""


async def on_session_end(ctx: JobContext) -> None:
    """livekit's hook between the AgentSession's close and the room's disconnect, for every
    way a job ends (idle timeout, the user leaving, an error, a shutdown): the conversation
    publishes its summary here, while the room can still receive it. The shutdown callbacks
    (`finish`) run after livekit has disconnected the room."""
    conclude = _concluding.pop(ctx.job.id, None)
    if conclude is not None:
        await conclude()
    running = _running.pop(ctx.job.id, None)
    if running is not None:
        running.finish_even_if_the_room_hangs()


def _greet(session: AgentSession, greeting: str) -> None:
    """Not interruptible: a first message typed at once must not cut the greeting off (the
    answer follows it). The user may also have left already: then there is no one to greet."""
    try:
        session.say(greeting, allow_interruptions=False)
    except RuntimeError:
        logger.info("session closed before the greeting")


Prepared = tuple[
    RoutingDecision, AgentConfig | None, int | None, ConfiguredAgent | ProviderError | None
]
NO_DATABASE_MESSAGE = (
    "Sorry, no agent can take this conversation right now: the service cannot reach its "
    "database. Please try again in a few minutes."
)


def _job_pin(job_metadata: str | None) -> AgentPin | None:
    """The pinned agent type of the job (dispatch) metadata only: the one metadata a
    participant can never write (see agent_configs/routing/pin.py)."""
    pin, problem = pin_from_job_metadata(RoutingContext.from_metadata(job_metadata))
    if problem is not None:
        logger.warning("job metadata: %s", problem)
    return pin


async def _prepare(
    services: ProcessServices,
    context: RoutingContext,
    session_id: str,
    vad: Any,
    pin: AgentPin | None,
) -> Prepared | DatabaseUnavailable:
    """Route, claim capacity, build the agent. A provider problem (missing key) releases the
    slot and comes back as the error, so the job can tell the room and end cleanly.

    The database being unreachable is not an error while this worker has a catalog snapshot
    (the cache serves it); without one it comes back as the error, so the job tells the
    user and records the refusal (spooled) instead of crashing in an empty room."""
    try:
        with child_span("routing", **{"switchboard.pinned": pin is not None}) as span:
            decision, config, slot = await _route_and_claim(services, context, session_id, pin)
            if span.is_recording():
                span.set_attributes(_routing_attributes(decision))
    except DatabaseUnavailable as exc:
        return exc
    if config is None:
        return decision, None, None, None
    config = for_frontend(config, context.raw.get("modality"))
    try:
        with child_span("agent.build", **{"switchboard.agent_id": config.agent_id}):
            agent = await _build_agent(
                services,
                config,
                vad,
                context.user_id,
                [],
                _template_values(context, decision, session_id),
            )
    except ProviderError as exc:
        await _release(services, config, slot, session_id)
        return decision, config, None, exc
    return decision, config, slot, agent


async def _abandon(
    services: ProcessServices,
    preparing: "asyncio.Task[Prepared | DatabaseUnavailable]",
    session_id: str,
) -> None:
    """The room connection failed: give back the capacity slot the preparation claimed."""
    try:
        prepared = await preparing
    except Exception:
        return
    if isinstance(prepared, DatabaseUnavailable):
        return
    _, config, slot, _ = prepared
    if config is not None:
        await _release(services, config, slot, session_id)


async def _read_metadata(
    ctx: JobContext,
) -> tuple[RoutingContext, str | None, rtc.RemoteParticipant | None]:
    """Dispatch and room metadata first; only wait for the participant when they say nothing."""
    context, source = routing_context(ctx.job.metadata, ctx.room.metadata)
    if source is not None:
        return context, source, None
    try:
        participant = await asyncio.wait_for(ctx.wait_for_participant(), PARTICIPANT_WAIT_S)
    except TimeoutError:
        return context, None, None
    context, source = routing_context(
        ctx.job.metadata, ctx.room.metadata, participant.metadata, participant.attributes
    )
    return trusted_user_id(context, source, participant), source, participant


async def _route_and_claim(
    services: ProcessServices, context: RoutingContext, session_id: str, pin: AgentPin | None = None
) -> tuple[RoutingDecision, AgentConfig | None, int | None]:
    """Route, then claim a session slot if the type has a limit; a lost race re-routes.

    One round trip (the change stamp) tells whether the catalog's rules and configs are
    current; after it, the route and the config reads are in memory (or in the snapshot
    another job wrote under that stamp) unless something was edited.

    With the database unreachable the catalog goes offline (its snapshot), without another
    read that would wait out MONGO_TIMEOUT_MS; no slot is claimed then.

    A pin (job metadata only) is tried first; when it cannot be honoured (unknown, archived,
    no such version, outside the pool, refused by the egress policy, full), the room is
    routed as usual and the trail starts with the pin and why it was skipped."""
    await services.catalog.refresh()
    skipped_pin: str | None = None
    if pin is not None:
        pinned, skipped_pin = await _claim_pinned(services, context, session_id, pin)
        if pinned is not None:
            return pinned
    decision = await services.router.route(context)
    if pin is not None and skipped_pin is not None:
        decision = with_pin_skipped(decision, pin, skipped_pin)
    for _ in range(CLAIM_ATTEMPTS):
        if decision.agent_id is None:
            return decision, None, None
        with child_span(
            "config.lookup",
            **{
                "switchboard.agent_id": decision.agent_id,
                "switchboard.offline": services.catalog.offline,
            },
        ):
            config = await services.catalog.get(decision.agent_id)
        limit = config.max_concurrent_sessions
        if limit is None or services.catalog.offline:
            return decision, config, None
        slot = await services.capacity.claim(config.agent_id, limit, session_id)
        if slot is not None:
            return decision, config, slot
        decision = await services.router.route(context)  # now sees the type as full
    return decision, None, None


async def _claim_pinned(
    services: ProcessServices, context: RoutingContext, session_id: str, pin: AgentPin
) -> tuple[tuple[RoutingDecision, AgentConfig, int | None] | None, str | None]:
    """The pinned type with its capacity slot, or why it cannot serve the room. The limit is
    the type's current `max_concurrent_sessions` (the slots are the type's, whichever
    version runs in them)."""
    settings = services.settings
    config, reason = await pinned_config(
        pin, services.catalog, services.store, pool=settings.pool, egress=settings.egress
    )
    if config is None:
        return None, reason
    rules_version = (await services.catalog.current()).version
    decision = pinned_decision(pin, context, rules_version, datetime.now(UTC))
    limit = (await services.catalog.get(pin.agent_id)).max_concurrent_sessions
    if limit is None or services.catalog.offline:
        return (decision, config, None), None
    slot = await services.capacity.claim(pin.agent_id, limit, session_id)
    if slot is None:
        return None, f"full: {limit}/{limit} sessions"
    return (decision, config, slot), None


async def _build_agent(
    services: ProcessServices,
    config: AgentConfig,
    prewarmed_vad: Any,
    user_id: str | None,
    history: list[Message],
    template_values: Mapping[str, Any],
) -> ConfiguredAgent:
    """The agent of `config`, its instructions and greeting rendered with `template_values`."""
    config = _personalized(config, template_values)
    models = await build_models(config, services.settings, prewarmed_vad)
    remembered = list(history)
    if not history and config.memory.enabled and user_id and not services.catalog.offline:
        try:
            remembered = await load_past_messages(
                services.database, config.agent_id, user_id, config.memory.max_past_turns
            )
        except Exception as exc:  # memory is a nicety: the session starts without it
            logger.warning("could not load memory for %s: %s", user_id, exc)
    return ConfiguredAgent(config, models, remembered)


def _template_values(
    context: RoutingContext, decision: RoutingDecision, session_id: str
) -> dict[str, Any]:
    """What `{{...}}` placeholders in instructions and greeting may use (agent_configs/templates.py):
    the room's metadata, the routing decision's variables (the webhook's), the session id."""
    return {
        "user_details": context.user_details,
        "variables": decision.variables,
        "user_id": context.user_id,
        "purpose": context.purpose,
        "tenant": context.tenant,
        "session_id": session_id,
    }


def _personalized(config: AgentConfig, values: Mapping[str, Any]) -> AgentConfig:
    """Rendered once, when the agent is built, so every later use (the greeting, a transfer
    target's greeting, the instructions each reply sends) says the same."""
    greeting = render(config.greeting, values) if config.greeting else config.greeting
    return config.model_copy(
        update={"instructions": render(config.instructions, values), "greeting": greeting}
    )


async def _find_handoff(
    services: ProcessServices, current_agent_id: str, text: str
) -> tuple[AgentConfig, dict[str, Any]] | None:
    page = await services.store.list_agents(status=AgentStatus.ACTIVE, limit=200)
    candidates = [
        c
        for c in page.items
        if c.intents and (not services.settings.pool or c.agent_id in services.settings.pool)
    ]
    match = match_intent(text, candidates)
    if match is None or match.agent_id == current_agent_id:
        return None
    return await services.catalog.get(match.agent_id), asdict(match)


async def _load_transfer_target(services: ProcessServices, agent_id: str) -> AgentConfig:
    """A transfer target checked as routing checks a proposal (unknown, paused, archived,
    refused by the egress policy, outside this pool); its capacity is claimed afterwards,
    atomically, by moving the session's slot."""
    settings = services.settings
    await services.catalog.refresh()  # mid-session: a pause since the room started applies
    availability = PoolAvailability(
        services.catalog.availability(egress=settings.egress), settings.pool
    )
    reason = await availability.unavailable_reason(agent_id)
    if reason is not None:
        raise TransferRefused(reason)
    return await services.catalog.get(agent_id)


HEARTBEAT_STOP_S = 2.0


async def _stop_beating(heartbeat: "asyncio.Task[None]") -> None:
    """Cancelled and awaited, so no beat lands after its removal; bounded, because in
    `make scale` a heartbeat task went on beating after its cancel (pymongo caught it inside
    a write, most likely) and the session's end waited on it until livekit killed the
    process 90 s later, its record still `active`. A beat that lands late is stale and the
    next sweep removes it."""
    heartbeat.cancel()
    done, _ = await asyncio.wait({heartbeat}, timeout=HEARTBEAT_STOP_S)
    if not done:
        logger.warning("heartbeat still running %.0f s after its cancel: left", HEARTBEAT_STOP_S)


async def _heartbeat(services: ProcessServices, held: SessionSlot, session_id: str) -> None:
    """Tells other workers this session (and its capacity slot, wherever hand-offs moved it)
    is alive; a beat takes at most one heartbeat interval, however long the record queue is.
    The first beat goes at once: a session started before a sweep's cutoff with no beat at
    all counts as lost."""
    while True:
        # Directly, not through the record queue: behind a backlog it arrived late or never.
        await write_heartbeat(
            services.database, session_id, timeout_s=services.settings.session_heartbeat_s
        )
        try:
            await held.heartbeat()
        except Exception as exc:
            logger.warning("slot heartbeat failed: %s", exc)
        await asyncio.sleep(services.settings.session_heartbeat_s)


async def _release(
    services: ProcessServices, config: AgentConfig, slot: int | None, session_id: str
) -> None:
    if slot is None:
        return
    try:
        await services.capacity.release(config.agent_id, slot, session_id)
    except Exception as exc:  # a stale slot is reclaimed after its heartbeat times out
        logger.warning("could not release slot %s of %s: %s", slot, config.agent_id, exc)


async def _refuse(
    ctx: JobContext,
    services: ProcessServices,
    session_id: str,
    decision: RoutingDecision | None,
    started_at: datetime,
    reason: str,
    *,
    tell_user: str | None = None,
) -> None:
    """No agent can serve this room: tell the frontend, record it, end the job cleanly.

    With `tell_user`, the user reads why on `lk.transcription` (where every agent text goes),
    and `switchboard.unavailable` names the reason for a frontend that shows its own text. The
    record goes through the writer like any other: with the database down it is spooled,
    and stored when a later job replays the spool."""
    routing = _decision_record(decision, None) if decision is not None else None
    payload = {"session_id": session_id, "reason": reason, "routing": routing}
    attributes = {"switchboard.agent_id": "", "switchboard.strategy": ""}
    if tell_user:
        attributes["switchboard.unavailable"] = reason
    await ctx.room.local_participant.set_attributes(attributes)
    if tell_user:
        try:
            await ctx.room.local_participant.send_text(tell_user, topic="lk.transcription")
        except Exception as exc:  # the user may have left already
            logger.info("could not tell the room why it was refused: %s", exc)
    services.writer.submit(
        Record(
            SESSIONS,
            session_id,
            {**payload, "room": ctx.room.name, "status": "refused", "started_at": started_at},
        )
    )
    await _tidy_up_quietly(services)
    await services.writer.close()
    ctx.shutdown(reason)


def _routing_attributes(decision: RoutingDecision) -> dict[str, str | int]:
    """The decision on its span: which type, by which strategy, under which rules."""
    return {
        "switchboard.agent_id": decision.agent_id or "",
        "switchboard.strategy": decision.strategy or "",
        "switchboard.rules_version": decision.rules_version,
        "switchboard.strategies_consulted": len(decision.trail),
    }


def _decision_record(decision: RoutingDecision, source: str | None) -> dict[str, Any]:
    return decision.model_dump(mode="json") | {"metadata_source": source}


async def _tidy_up_quietly(services: ProcessServices) -> None:
    """At each job start, once the session runs: spooled records; and, when it is due,
    sessions of lost workers."""
    stale_after_s = services.settings.session_stale_after_s
    try:
        await services.catalog.snapshot_active(SNAPSHOT_EVERY_S)
        await replay_spool(services.database, services.settings.spool_dir)
        if await sweep_is_due(services.database, every_s=stale_after_s / 2):
            await abort_stale_sessions(services.database, stale_after_s)
    except Exception as exc:  # the next job start tries again
        logger.warning("housekeeping skipped: %s", exc)


SLOW_FINISH_S = 3.0
ROOM_DISCONNECT_GRACE_S = 15.0
"""How long after `on_session_end` a session waits for livekit's room disconnect (normally
well under a second) before it ends itself: well inside the supervisor's 90 s kill."""
HOUSEKEEPING_AT_END_S = 5.0
"""How long a session's end waits for the housekeeping its start began: it is best effort
(the next job start does it again), and the session's own end record must not wait on it."""


async def _let_finish_or_cancel(task: "asyncio.Task[None]", timeout_s: float) -> None:
    started = time.monotonic()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logger.warning(
            "housekeeping still running at session end after %.1f s: cancelled",
            time.monotonic() - started,
        )


SNAPSHOT_EVERY_S = 30.0  # how often a worker lists every active type into the catalog snapshot


def _forget_ended_processes(server: AgentServer) -> None:
    """Main process: once a job process has exited, its metric files are folded away
    (`metrics.forget_process`), so the metrics directory does not grow by a few files per
    session and an ended process's gauges vanish.

    livekit-agents 1.8 has no public hook for a job process's exit; its process pool emits
    `process_closed` after joining the process (also for one that crashed or was killed),
    which is the moment its files are final. The pool exists once the server has started.
    An exit hook inside the job process would miss every process that did not exit cleanly."""
    pool = getattr(server, "_proc_pool", None)
    if pool is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning("metric files of ended job processes are not cleaned up (no process pool)")
        return
    metrics.serialize_scrapes_with_merges()
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    def closed(process: Any) -> None:
        pid = getattr(process, "pid", None)
        if not pid or pid == os.getpid():  # a thread executor runs jobs in this process
            return
        task = loop.create_task(_forget_process(pid))
        running.add(task)
        task.add_done_callback(running.discard)

    async def _forget_process(pid: int) -> None:
        try:  # off the loop: file I/O, and a lock a scrape may hold
            await loop.run_in_executor(None, metrics.forget_process, pid)
        except Exception as exc:  # the next worker start wipes the directory anyway
            logger.warning("metric files of ended process %s left as they are: %s", pid, exc)

    pool.on("process_closed", closed)


def create_server(settings: WorkerSettings | None = None) -> AgentServer:
    settings = settings or get_worker_settings()
    server = AgentServer(
        host=settings.worker_http_host,
        port=settings.worker_http_port,
        drain_timeout=settings.worker_drain_timeout_s,
        load_fnc=session_load,
        load_threshold=math.inf,  # capacity is Admission's job, see there
        shutdown_process_timeout=SHUTDOWN_PROCESS_TIMEOUT_S,
        prometheus_port=settings.prometheus_port,
        prometheus_multiproc_dir=str(settings.prometheus_multiproc_dir),
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        # Imported once in livekit's forkserver: job processes share these modules' memory
        # copy-on-write instead of each importing them (~28 MB per process). The last three
        # are what the first streamed LLM reply would otherwise import in every job.
        preload_modules=[
            "worker.server",
            "openai.lib.streaming.chat",
            "anyio._backends._asyncio",
            "jiter",
        ],
    )
    server.setup_fnc = prewarm
    _admission.server = server
    server.on("worker_started", lambda: _forget_ended_processes(server))
    server.rtc_session(
        entrypoint,
        agent_name=settings.agent_name,
        on_request=on_request,
        on_session_end=on_session_end,
    )
    return server
