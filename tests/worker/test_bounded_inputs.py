"""Bounded inputs end to end: what a room sends cannot crash a job, lose its records, grow the
session record or the LLM context without limit, overbook an agent type or fill the metrics
directory. The real worker, LiveKit and FerretDB; the model is the scripted endpoint
(tests/worker/scripted_llm.py): none of these bounds depends on what a model answers, and the
tiny local model's replies and summaries were 21 s of the module's 62 s (measured, 2 cores)."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from livekit import api
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.capacity import SLOTS, CapacityGuard
from agent_configs.store import ConfigStore
from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    RunningWorker,
    agent_changed,
    assert_the_model_answered,
    wait_for_session_end,
)
from tests.worker.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.usefixtures("text_only_agents")


@pytest.fixture(scope="module")
def worker(scripted_worker: RunningWorker) -> RunningWorker:
    return scripted_worker


def new_client(endpoints: Endpoints, worker: RunningWorker) -> RoomClient:
    return RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )


async def eventually(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` (sync or async) until it is truthy: the thing waited for happens in
    another process, which tells us nothing when it is done."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.25)


# -- what goes to the LLM: a recording proxy in front of the scripted model -----------------------


@dataclass
class RecordingProxy:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def replies(self) -> list[list[dict[str, Any]]]:
        """The messages of each streamed reply request (structured retries and the summary are
        separate, non-streamed calls)."""
        return [r["messages"] for r in self.requests if r.get("stream")]


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


@pytest.fixture
async def llm_proxy(scripted: ScriptedLLM) -> AsyncIterator[RecordingProxy]:
    """In front of the scripted model: what is judged is what the worker sends, and the
    embedded model's answers (blank ones included) would only make these tests slow and
    uncertain (a blank answer is a failed turn, without the fields some of them read)."""
    upstream = scripted.url.rstrip("/").removesuffix("/v1")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        proxy = RecordingProxy(url="")

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            with contextlib.suppress(ValueError):
                proxy.requests.append(json.loads(body))
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("content-type", "authorization")
            }
            async with http.request(
                request.method, upstream + request.path_qs, data=body, headers=headers
            ) as answer:
                response = web.StreamResponse(
                    status=answer.status,
                    headers={"Content-Type": answer.headers.get("Content-Type", "")},
                )
                await response.prepare(request)
                async for chunk in answer.content.iter_any():  # streamed replies stay streamed
                    await response.write(chunk)
                await response.write_eof()
                return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        try:
            yield proxy
        finally:
            await runner.cleanup()


async def sales_through(proxy: RecordingProxy, database: AsyncDatabase) -> Any:
    """Sales' model behind the proxy, with short replies (at most 60 tokens, a few hundred
    characters), so the limits below are reached by the user's messages, as designed."""
    sales = await ConfigStore(database).get("sales-agent-v1")
    return sales.llm.model_copy(update={"base_url": proxy.url, "fallback": [], "max_tokens": 60})


async def test_an_overlong_message_is_cut_to_the_cap_and_its_turn_says_so(
    endpoints: Endpoints,
    worker: RunningWorker,
    worker_database: AsyncDatabase,
    llm_proxy: RecordingProxy,
) -> None:
    llm = await sales_through(llm_proxy, worker_database)
    async with agent_changed(
        worker_database, "sales-agent-v1", llm=llm, max_user_message_chars=200
    ):
        client = new_client(endpoints, worker)
        try:
            await client.join({"purpose": "sales", "user_id": "u-long-message"})
            await client.next_transcript(0)
            message = ("We are a team of forty and want the yearly plan. " * 12).strip()
            assert len(message) > 500
            await client.say(message)
            turn = await client.next_turn(0)
        finally:
            await client.leave()
    assert turn["user_text_truncated"] is True
    sent = [text_of(m) for m in llm_proxy.replies()[0] if m["role"] == "user"]
    assert sent == [message[:200]]
    record = await wait_for_session_end(worker_database, client.room_name)
    stored = await worker_database["turns"].find_one({"session_id": record["session_id"]})
    assert stored["user_text"] == message[:200]
    assert (stored["user_text_truncated"], stored["user_text_original_chars"]) == (
        True,
        len(message),
    )
    assert record["transcript"][1] == {"role": "user", "text": message[:200]}


async def test_a_long_conversation_keeps_the_newest_messages_in_the_context_and_the_record(
    endpoints: Endpoints,
    worker: RunningWorker,
    worker_database: AsyncDatabase,
    llm_proxy: RecordingProxy,
) -> None:
    llm = await sales_through(llm_proxy, worker_database)
    limits = {
        "max_user_message_chars": 400,
        "max_context_chars": 1000,
        "max_transcript_chars": 1000,
    }
    messages = [
        (f"Question {n}: what would the plan cost for {n * 10} seats? " * 8)[:390]
        for n in (1, 2, 3)
    ]
    async with agent_changed(worker_database, "sales-agent-v1", llm=llm, **limits):
        client = new_client(endpoints, worker)
        try:
            await client.join({"purpose": "sales", "user_id": "u-long-talk"})
            await client.next_transcript(0)
            for n, message in enumerate(messages):
                await client.say(message)
                # three turns in a row on a shared CPU: each reply can queue behind the fields
                # of the one before
                await client.next_transcript(n + 1, timeout=300)
        finally:
            await client.leave()

    last = llm_proxy.replies()[-1]
    assert (
        last[0]["role"] == "system" and "sales" in text_of(last[0]).lower()
    )  # instructions always go
    conversation = [text_of(m) for m in last[1:]]
    assert conversation[-1] == messages[2]
    assert messages[0] not in conversation  # the oldest did not fit beside the newest
    assert sum(len(text) for text in conversation) <= 1000

    record = await wait_for_session_end(worker_database, client.room_name)
    transcript = record["transcript"]
    assert sum(len(entry["text"]) for entry in transcript) <= 1000
    assert record["transcript_dropped"] >= 2  # at least the greeting and the first question
    assert {"role": "user", "text": messages[2]} in transcript
    assert {"role": "user", "text": messages[0]} not in transcript


# -- metadata that used to crash a job or lose its records -------------------------------------


class AttributesClient(RoomClient):
    """Sends nothing but participant attributes, as a frontend that sets them on its token."""

    attributes: dict[str, str] = {}

    def token(self, metadata: str | None, identity: str, **_: Any) -> str:
        dispatch = api.RoomAgentDispatch(agent_name=self.agent_name, metadata="")
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=self.room_name))
            .with_room_config(api.RoomConfiguration(agents=[dispatch]))
            .with_attributes(self.attributes)
            .to_jwt()
        )


async def test_a_room_whose_attributes_carry_3000_deep_user_details_still_gets_an_agent(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    client = AttributesClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )
    client.attributes = {"user_details": '{"a": ' * 3000 + "1" + "}" * 3000}
    try:
        await client.join(None)
        assert await client.routed_agent() == ("support-agent-v1", "default")
    finally:
        await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert (
        "participant_attributes: user_details: nested too deeply to parse; ignored"
        in record["routing"]["warnings"]
    )


async def test_a_lone_surrogate_as_agent_id_gets_the_default_agent(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    client = new_client(endpoints, worker)
    try:
        await client.join('{"agent_id": "\\udfff"}')  # JSON text: the escape is what arrives
        assert await client.routed_agent() == ("support-agent-v1", "default")
    finally:
        await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert (
        "job: metadata: 1 lone UTF-16 surrogate(s) replaced with U+FFFD"
        in record["routing"]["warnings"]
    )


async def test_a_lone_surrogate_in_user_id_still_stores_the_session_and_its_turns(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    client = new_client(endpoints, worker)
    try:
        await client.join('{"purpose": "support", "user_id": "u\\udfff"}')
        await client.next_transcript(0)
        await client.say("Hello, my invoice is wrong.")
        await client.next_turn(0)
    finally:
        await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert record["user_id"] == "u\ufffd"
    turns = await eventually(
        lambda: worker_database["turns"].find({"session_id": record["session_id"]}).to_list(None),
        30,
        "the turn",
    )
    assert (
        turns[0]["user_id"] == "u\ufffd" and turns[0]["user_text"] == "Hello, my invoice is wrong."
    )


# -- an intent hand-off is a session of the target type: it needs a slot -----------------------

PRICING = "What is your pricing? Could I get a quote for ten seats?"  # matches sales' intent


async def session_id_of(database: AsyncDatabase, room: str) -> str:
    record = await eventually(
        lambda: database["sessions"].find_one({"room": room}), 60, "the session record"
    )
    return str(record["session_id"])


async def slots_of(database: AsyncDatabase, session_id: str) -> list[str]:
    return sorted(
        s["agent_id"] for s in await database[SLOTS].find({"session_id": session_id}).to_list(None)
    )


async def test_no_hand_off_to_a_type_whose_slots_are_all_taken(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    guard = CapacityGuard(worker_database)
    assert await guard.claim("sales-agent-v1", 1, "sess_occupier") == 0

    async def keep_occupied() -> None:  # a live session elsewhere heart-beats its slot
        while True:
            await asyncio.sleep(5)
            await guard.heartbeat("sales-agent-v1", 0, "sess_occupier")

    occupier = asyncio.create_task(keep_occupied())
    client = new_client(endpoints, worker)
    try:
        async with agent_changed(worker_database, "sales-agent-v1", max_concurrent_sessions=1):
            await client.join({"user_id": "u-handoff-full"})
            assert await client.routed_agent() == ("support-agent-v1", "default")
            await client.next_transcript(0)
            await client.say(PRICING)
            assert_the_model_answered(await client.next_turn(0))  # by the agent it had
            assert client.agent_attributes()["switchboard.agent_id"] == "support-agent-v1"
            assert "agent-handoff" not in client.data
            session_id = await session_id_of(worker_database, client.room_name)
            assert await slots_of(worker_database, session_id) == []
            await client.leave()
            record = await wait_for_session_end(worker_database, client.room_name)
    finally:
        occupier.cancel()
        await client.leave()
        await guard.release("sales-agent-v1", 0, "sess_occupier")
    assert (record["agent_id"], record["handoffs"]) == ("support-agent-v1", [])
    logged = [
        json.loads(line)
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        line.get("session_id") == session_id
        and line["message"].startswith("no hand-off to sales-agent-v1")
        for line in logged
    )


async def test_a_hand_off_moves_the_session_slot_to_the_target_type(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    client = new_client(endpoints, worker)
    async with (
        agent_changed(worker_database, "sales-agent-v1", max_concurrent_sessions=1),
        agent_changed(worker_database, "support-agent-v1", max_concurrent_sessions=5),
    ):
        try:
            await client.join({"user_id": "u-handoff-free"})
            assert await client.routed_agent() == ("support-agent-v1", "default")
            session_id = await session_id_of(worker_database, client.room_name)
            assert await slots_of(worker_database, session_id) == ["support-agent-v1"]
            await client.next_transcript(0)
            await client.say(PRICING)
            await client.wait_for(
                lambda: client.agent_attributes().get("switchboard.agent_id") == "sales-agent-v1",
                60,
                "the hand-off",
            )
            assert await slots_of(worker_database, session_id) == ["sales-agent-v1"]
            # the slot counts: a second sales session is not possible while this one runs
            assert (
                await CapacityGuard(worker_database).claim("sales-agent-v1", 1, "sess_other")
                is None
            )
            assert_the_model_answered(await client.next_turn(0))  # and sales answers
        finally:
            await client.leave()
        await wait_for_session_end(worker_database, client.room_name)
        await eventually(
            lambda: _no_slots(worker_database, session_id), 30, "the slot to be released at the end"
        )


async def _no_slots(database: AsyncDatabase, session_id: str) -> bool:
    return await slots_of(database, session_id) == []


# -- metric files of ended job processes --------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """A zombie has exited: it counts as dead, as it does for prometheus' bookkeeping."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def files_of_ended_processes(directory: Path) -> list[str]:
    ended = []
    for path in directory.glob("*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            ended.append(path.name)
    return ended


async def scrape(worker: RunningWorker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


async def test_ended_job_processes_leave_no_metric_files_and_their_counts_stay(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    directory = Path(worker.env["PROMETHEUS_MULTIPROC_DIR"])
    started_before = total(await scrape(worker), "switchboard_sessions_started_total")
    for n in range(3):
        client = new_client(endpoints, worker)
        try:
            await client.join({"purpose": "onboarding", "user_id": f"u-metrics-{n}"})
            await client.next_transcript(0)
        finally:
            await client.leave()
        await wait_for_session_end(worker_database, client.room_name)
        # each session's job process exits after its end is recorded; its files must go then
        await eventually(
            lambda: not files_of_ended_processes(directory), 90, "files of ended processes to go"
        )

    samples = await scrape(worker)
    assert (
        total(samples, "switchboard_sessions_started_total") - started_before == 3
    )  # counted, not lost
    assert total(samples, "switchboard_active_sessions") == 0
    assert (directory / "counter_archive.db").exists()
