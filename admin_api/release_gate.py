"""The release gate: a change to a release-gated agent type goes live only with a passing eval
run on exactly the definition going live (README "Evals" > "Release gate").

Whether a change is gated is decided by the CURRENT version's `release_gate`, so switching it
off is gated too, and creating a type is not. A passing run for a definition is an `eval_runs`
document of the type with `status` completed, `passed` true, the definition's digest and the
digest of the type's suite as stored now (agent_configs/fingerprints.py): a run of a suite
edited since does not count; a rollback or a resume of a tested definition finds its run. A
gated type without a suite has no passing run. The lookup is one indexed query (the index is
made with the other eval_runs indexes, admin_api/eval_records.py).

The routes only ask this module: `admit` says whether a change may go live (a passing run,
the type not gated, or an admin's override), `refusal` is the 409 problem naming the failing
scenarios, `record_override` writes the audited `agent.gate_overridden` event. The override
is the header `Switchboard-Gate-Override: <reason>` (admin routes only, 1..500 characters);
only a change it let through is recorded as overridden.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Header
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.deps import AdminKey, ServicesDep
from admin_api.eval_records import EvalRecords
from admin_api.events import EventLog, EventType
from admin_api.outbox import AdminOutbox
from admin_api.problems import FieldProblem, ProblemError, invalid_request
from agent_configs.database import database_errors
from agent_configs.errors import AgentNotFound
from agent_configs.evals import EVAL_RUNS
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.models import AgentConfig
from agent_configs.routing.rules import RoutingRules
from agent_configs.routing.traffic import more_traffic
from agent_configs.store import ConfigStore

OVERRIDE_HEADER = "Switchboard-Gate-Override"
CANDIDATE_HEADER = "Switchboard-Candidate"
MAX_REASON_CHARS = 500
COMPLETED = "completed"


class GateAction(StrEnum):
    SAVE = "save"
    ACTIVATE = "activate"
    RESUME = "resume"
    ROLLBACK = "rollback"
    ROUTING = "routing"


@dataclass(frozen=True)
class Verdict:
    """What the eval runs say about one version of a gated type."""

    agent_id: str
    version: int
    has_suite: bool
    passing_run_id: str | None = None
    newest_run_id: str | None = None
    """The newest completed run on the definition and suite, passed or not."""
    failing_scenarios: tuple[str, ...] = ()
    """The newest run's scenarios that missed their required pass rate."""

    @property
    def passed(self) -> bool:
        return self.passing_run_id is not None

    def members(self) -> dict[str, Any]:
        """The 409's extension members for this version."""
        return {
            "agent_id": self.agent_id,
            "version": self.version,
            "run_id": self.newest_run_id,
            "failing_scenarios": list(self.failing_scenarios),
        }

    def explain(self) -> str:
        run = f"python -m evals run --agent {self.agent_id} --version {self.version}"
        if not self.has_suite:
            return (
                f"{self.agent_id} has no eval suite, so version {self.version} has no passing "
                f"run: store one (PUT /api/v1/agents/{self.agent_id}/suite), then `{run}`"
            )
        if self.newest_run_id is None:
            return (
                f"no completed eval run of {self.agent_id}'s suite on version {self.version}'s "
                f"definition: run it (`{run}`)"
            )
        failing = ", ".join(self.failing_scenarios) or "none below its rate"
        return (
            f"the newest eval run of {self.agent_id} version {self.version} "
            f"({self.newest_run_id}) failed: {failing}"
        )


@dataclass(frozen=True)
class Admission:
    """Whether a change may go live. `verdict` is None when the type is not gated."""

    verdict: Verdict | None
    overridden: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict is None or self.verdict.passed or self.overridden

    @property
    def run_id(self) -> str | None:
        """The passing run that let the change through (None: not gated, or overridden)."""
        return self.verdict.passing_run_id if self.verdict is not None else None


def runs_query(config: AgentConfig, suite_fingerprint: str) -> dict[str, Any]:
    """Completed runs of `config`'s definition on the suite with that digest (the index's
    prefix; add `passed: True` for a passing one)."""
    return {
        "agent_id": config.agent_id,
        "definition_digest": definition_digest(config),
        "suite_digest": suite_fingerprint,
        "status": COMPLETED,
    }


def failing_scenarios(run: dict[str, Any]) -> tuple[str, ...]:
    return tuple(s["name"] for s in run.get("scenarios") or [] if not s.get("passed"))


def parse_override(value: str | None) -> str | None:
    """The override's reason, or 422 naming the header when it is blank or too long."""
    if value is None:
        return None
    reason = value.strip()
    if not 1 <= len(reason) <= MAX_REASON_CHARS:
        message = f"must give a reason of 1 to {MAX_REASON_CHARS} characters"
        raise invalid_request(
            [FieldProblem(field=OVERRIDE_HEADER, message=message, location="header")]
        )
    return reason


class ReleaseGate:
    """One admin request's gate: its actor, and its override reason if it sent one."""

    def __init__(
        self,
        database: AsyncDatabase,
        events: EventLog,
        outbox: AdminOutbox,
        actor: str,
        override: str | None,
    ) -> None:
        self._records = EvalRecords(database)
        self._runs = database[EVAL_RUNS]
        self._events = events
        self._outbox = outbox
        self.actor = actor
        self.override = override

    async def verdict(self, config: AgentConfig) -> Verdict:
        """What the runs say about `config`'s definition with the type's current suite."""
        suite = await self._records.suite(config.agent_id)
        if suite is None:
            return Verdict(config.agent_id, config.version, has_suite=False)
        query = runs_query(config, suite_digest(suite))
        with database_errors():
            passing = await self._runs.find_one(query | {"passed": True}, {"_id": 1})
            newest = await self._runs.find_one(
                query,
                {"scenarios.name": 1, "scenarios.passed": 1},
                sort=[("started_at", DESCENDING)],
            )
        return Verdict(
            config.agent_id,
            config.version,
            has_suite=True,
            passing_run_id=str(passing["_id"]) if passing else None,
            newest_run_id=str(newest["_id"]) if newest else None,
            failing_scenarios=failing_scenarios(newest) if newest else (),
        )

    async def admit(self, current: AgentConfig, target: AgentConfig) -> Admission:
        """May `target` go live, `current` being the type's current version?"""
        if not current.release_gate:
            return Admission(None)
        verdict = await self.verdict(target)
        return Admission(verdict, overridden=not verdict.passed and self.override is not None)

    async def admit_routing(
        self, store: ConfigStore, old: RoutingRules, new: RoutingRules
    ) -> list[tuple[AgentConfig, Admission]]:
        """The gated types `new` sends more traffic than `old` (agent_configs/routing/traffic.py),
        each with its admission on its current version; raises the 409 naming every one
        refused, unless overridden."""
        gated: list[tuple[AgentConfig, Admission]] = []
        for agent_id in more_traffic(old, new):
            try:
                config = await store.get(agent_id)
            except AgentNotFound:
                continue  # check_agent_ids has refused the rules already
            admission = await self.admit(config, config)
            if admission.verdict is not None:
                gated.append((config, admission))
        refused = [a.verdict for _, a in gated if a.verdict is not None and not a.allowed]
        if refused:
            raise self.routing_refusal(refused)
        return gated

    def refusal(self, verdict: Verdict) -> ProblemError:
        return ProblemError(
            409,
            "release-gate",
            "No passing eval run for this version",
            f"{verdict.explain()}; or send {OVERRIDE_HEADER}: <reason> to override (audited)",
            **verdict.members(),
        )

    def routing_refusal(self, verdicts: list[Verdict]) -> ProblemError:
        explained = "; ".join(v.explain() for v in verdicts)
        return ProblemError(
            409,
            "release-gate",
            "The routing change sends more traffic to a version without a passing eval run",
            f"{explained}; or send {OVERRIDE_HEADER}: <reason> to override (audited)",
            agents=[v.members() for v in verdicts],
        )

    async def record_override(self, agent_id: str, version: int, action: GateAction) -> None:
        """The audited `agent.gate_overridden`, after the change it let through committed."""
        reason = self.override or ""
        await self._events.record(
            EventType.AGENT_GATE_OVERRIDDEN,
            self.actor,
            agent_id=agent_id,
            version=version,
            details={"reason": reason, "action": str(action)},
        )
        self._outbox.gate_overridden(agent_id, version, self.actor, reason=reason, action=action)


async def release_gate(
    caller: AdminKey,
    services: ServicesDep,
    override: Annotated[
        str | None,
        Header(
            alias=OVERRIDE_HEADER,
            description="Let a change through without a passing eval run of a release-gated "
            f"type: the reason, 1 to {MAX_REASON_CHARS} characters (audited as "
            "agent.gate_overridden).",
        ),
    ] = None,
) -> ReleaseGate:
    return ReleaseGate(
        services.database, services.events, services.outbox, caller.name, parse_override(override)
    )


Gate = Annotated[ReleaseGate, Depends(release_gate)]
