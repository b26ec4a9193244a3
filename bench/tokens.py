"""Tokens per turn: what each turn generates against the least it needs, and what its prompt
costs against the bare worker's, on the local model (real tokens).

    .venv/bin/python -m bench.tokens [--sessions 2] [--types support-agent-v1 ...]

For each built-in agent type (text-only, as shipped otherwise: its sampling, max_tokens,
fields, memory and summary), `--sessions` Switchboard sessions and as many on a bare
livekit-agents worker fed that type's instructions, greeting and sampling
(bench/bare_worker.py), one session at a time, the same two user messages in both. Sessions
of one type share a user, so from the second one on a type with `memory` carries the
earlier turns.

Every request both workers send the LLM goes through a recording proxy (bench/llm_recorder.py:
each worker's LOCAL_LLM_URL names its own path), so nothing in the worker is changed or
asked. Token counts are llama.cpp's (`usage` of each answer); texts are tokenized by the same
server (`/tokenize`, the same model's tokenizer).

Per turn:
- generated: the completion tokens of every request the turn made (the reply with its
  fields, tool rounds, the structured-turn call when it ran);
- least: the tokens of the compact JSON `{"system_response": ..., field: value, ...}` of what
  the turn produced (its record in MongoDB, fields in schema order); for the bare worker, the
  tokens of its reply text;
- ratio = generated / least (target <= 1.10), and where the excess went: JSON formatting
  (the generated text's tokens minus those of the same object written compactly), the end
  token and non-canonical token splits (completion tokens minus the generated text's tokens),
  the structured-turn call, and the rest (fields the retry replaced);
- prompt tokens of the turn's reply request, Switchboard and bare, and what they are made of:
  the agent's instructions, the field instructions Switchboard adds, remembered turns, the
  conversation, and the chat template (plus any tools) as the remainder.

Per session: the summary's completion tokens against the bound its request carried.
Writes bench/results/tokens-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BenchStack,
    _start_worker,
    _wait_registered,
    fmt,
    machine_info,
    print_table,
    seed_database,
    write_results,
)
from bench.llm_recorder import Exchange, RecordingProxy, Tokenizer
from devstack.services import reserve_port

MESSAGES: dict[str, list[list[str]]] = {
    "support-agent-v1": [
        ["My login is not working since this morning.", "I already tried resetting my password."],
        ["The mobile app crashes when I open settings.", "It happens on every device I own."],
    ],
    "sales-agent-v1": [
        ["We are a team of forty people looking for a better CRM.", "What would it cost us?"],
        ["Our support team loses track of customer emails.", "Could you show me next week?"],
    ],
    "onboarding-agent-v1": [
        ["Hi, I am new here. Where do I begin?", "How do I invite my colleagues?"],
        ["I created a workspace yesterday.", "What should I do next?"],
    ],
    "pte-interview-agent-v1": [
        ["My name is Priya Sharma.", "I am applying for a master's course in data science."],
        ["My name is Tom Becker.", "I hold a passport and an offer letter from the university."],
    ],
}
"""Two messages per session, none with another type's intent keywords, so no session is
handed to another type halfway (agent_configs/routing/intents.py)."""
SUMMARY_PROMPT = "You write short notes"
"""How worker/turns.py `summarize` starts its system prompt (also the hand-off's summary)."""
FIELDS_PROMPT = "You annotate conversations"
"""How worker/turns.py `TurnFiller` starts its system prompt (the structured-turn call)."""
TARGET = 1.10
JOIN_TIMEOUT_S = 60.0
GREETING_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 240.0
QUIET_TIMEOUT_S = 240.0


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class TokenStack(BenchStack):
    """The devstack, the recording proxy, one Switchboard worker and one bare worker per type."""

    def __init__(self, types: list[str], llm_overrides: dict[str, Any]) -> None:
        super().__init__(max_sessions=4, llm_overrides=llm_overrides)
        self.types = types
        self.configs: dict[str, Any] = {}
        self.proxy: RecordingProxy | None = None

    def start(self) -> None:
        from devstack import DEFAULT_ROOT, Devstack

        self._devstack = Devstack(DEFAULT_ROOT, run_dir=self.run_dir)
        self.endpoints = self._devstack.start()
        if not self.endpoints.local_llm_url:
            raise RuntimeError("the local model stack is not installed: run `make test` once")
        self.proxy = RecordingProxy(self.endpoints.local_llm_url).start()
        asyncio.run(seed_database(self.endpoints.mongo_uri, self.database_name, self.llm_overrides))
        self.configs = asyncio.run(self._read_configs())
        common = (
            os.environ | self.endpoints.as_env() | {"WORKER_MAX_SESSIONS": str(self.max_sessions)}
        )
        tag = uuid.uuid4().hex[:6]
        name = f"bench-tok-sb-{tag}"
        self.workers["switchboard"] = _start_worker(
            "switchboard",
            [sys.executable, "-m", "worker", "start"],
            common
            | {
                "LOCAL_LLM_URL": self.proxy.url("switchboard"),
                "MONGO_DB": self.database_name,
                "AGENT_NAME": name,
                "PROMETHEUS_PORT": str(reserve_port(0, "metrics", "UNUSED")),
                "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics"),
                "SPOOL_DIR": str(self.run_dir / "spool"),
            },
            self.run_dir / "logs" / "worker-switchboard.log",
            name,
        )
        for agent_id in self.types:
            config = self.configs[agent_id]
            name = f"bench-tok-bare-{agent_id[:12]}-{tag}"
            self.workers[f"bare:{agent_id}"] = _start_worker(
                "bare",
                [sys.executable, "-m", "bench.bare_worker", "start"],
                common
                | {
                    "LOCAL_LLM_URL": self.proxy.url(f"bare.{agent_id}"),
                    "AGENT_NAME": name,
                    "BARE_GREETING": config.greeting or "Hello!",
                    "BARE_INSTRUCTIONS": config.instructions,
                    "BARE_LLM_MODEL": config.llm.model,
                    "BARE_TEMPERATURE": str(config.llm.temperature),
                    "BARE_MAX_TOKENS": str(config.llm.max_tokens or 256),
                },
                self.run_dir / "logs" / f"worker-bare-{agent_id}.log",
                name,
            )
        for worker in self.workers.values():
            _wait_registered(worker)

    async def _read_configs(self) -> dict[str, Any]:
        from agent_configs.database import open_client
        from agent_configs.store import ConfigStore

        assert self.endpoints
        client = open_client(self.endpoints.mongo_uri)
        try:
            store = ConfigStore(client[self.database_name])
            return {agent_id: await store.get(agent_id) for agent_id in self.types}
        finally:
            await client.close()

    def stop(self) -> None:
        super().stop()
        if self.proxy is not None:
            self.proxy.stop()

    async def records(self, rooms: list[str]) -> dict[str, list[dict[str, Any]]]:
        """room -> its turn records (turn order), once every session record has ended."""
        from agent_configs.database import open_client

        assert self.endpoints
        client = open_client(self.endpoints.mongo_uri)
        try:
            database = client[self.database_name]
            deadline = time.monotonic() + 60
            while True:
                sessions = await database["sessions"].find({"room": {"$in": rooms}}).to_list(None)
                ended = [s for s in sessions if s.get("status") != "active"]
                if len(ended) == len(rooms) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            by_room: dict[str, list[dict[str, Any]]] = {}
            for session in sessions:
                turns = await (
                    database["turns"]
                    .find({"session_id": str(session["_id"])})
                    .sort("turn_index", 1)
                    .to_list(None)
                )
                by_room[session["room"]] = [t for t in turns if t.get("user_text")]
            return by_room
        finally:
            await client.close()


async def run_session(
    stack: TokenStack, kind: str, agent_id: str, messages: list[str], user_id: str
) -> dict[str, Any]:
    """Join, read the greeting, send each message and read its reply, leave; then wait until
    the workers and the LLM are idle, so the session's summary is among its exchanges."""
    assert stack.proxy is not None
    metadata = {"agent_id": agent_id, "user_id": user_id}
    client = stack.client(kind, metadata, identity=f"{user_id}-{uuid.uuid4().hex[:6]}")
    first = len(stack.proxy.exchanges)
    result: dict[str, Any] = {"kind": kind, "agent_id": agent_id, "room": client.room_name}
    try:
        await client.join(JOIN_TIMEOUT_S)
        await client.wait_transcripts(1, GREETING_TIMEOUT_S)
        if kind == "switchboard":
            served = await client.served_by(GREETING_TIMEOUT_S)
            if served != agent_id:
                raise RuntimeError(f"served by {served}, not {agent_id}")
        for message in messages:
            await client.chat(message, REPLY_TIMEOUT_S)
        result["replies"] = [t.text for t in client.transcripts[1:]]
        result["ok"] = True
    except Exception as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await client.leave()
    result["quiet"] = await asyncio.to_thread(stack.wait_quiet, QUIET_TIMEOUT_S, 0.5)
    result["exchanges"] = stack.proxy.exchanges[first:]
    return result


def exchange_kind(exchange: Exchange) -> str:
    system = exchange.system_text()
    if system.startswith(SUMMARY_PROMPT):
        return "summary"
    if system.startswith(FIELDS_PROMPT):
        return "fields"
    return "reply"


def prompt_parts(
    exchange: Exchange, instructions: str, greeting: str, tokens: Tokenizer
) -> dict[str, int]:
    """What a reply request's prompt is made of, in tokens. `instructions` is the agent's own
    (what the bare worker sends as its system prompt); what Switchboard's system prompt has
    beyond it is the field instructions. Messages before the greeting are remembered turns."""
    system = exchange.system_text()
    conversation = [m for m in exchange.messages if m.get("role") not in ("system", "developer")]
    greeting_at = next(
        (
            i
            for i, m in enumerate(conversation)
            if m.get("role") == "assistant" and (m.get("content") or "") == greeting
        ),
        0,
    )

    def count(messages: list[dict[str, Any]]) -> int:
        total = 0
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            total += tokens.count(content or "")
            for call in message.get("tool_calls") or []:
                total += tokens.count(json.dumps(call.get("function", {})))
        return total

    own = tokens.count(instructions) if instructions and system.startswith(instructions) else 0
    parts = {
        "instructions": own,
        "field_instructions": tokens.count(system) - own if system else 0,
        "memory": count(conversation[:greeting_at]),
        "conversation": count(conversation[greeting_at:]),
        "tools": tokens.count(json.dumps(exchange.request["tools"]))
        if exchange.request.get("tools")
        else 0,
    }
    parts["template"] = exchange.prompt_tokens - sum(parts.values())
    return parts


def turns_of(
    session: dict[str, Any], records: list[dict[str, Any]] | None, config: Any, tokens: Tokenizer
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per turn, the session's other calls)."""
    exchanges: list[Exchange] = session["exchanges"]
    replies = [e for e in exchanges if exchange_kind(e) == "reply"]
    fields_calls = [e for e in exchanges if exchange_kind(e) == "fields"]
    others = [e for e in exchanges if exchange_kind(e) == "summary"]
    rows = []
    user_texts = [r["user_text"] for r in records] if records is not None else []
    if records is None:  # the bare worker: one turn per message answered
        user_texts = list(dict.fromkeys(e.last_user_text() for e in replies))
    for index, user_text in enumerate(user_texts):
        generations = [e for e in replies if e.last_user_text() == user_text]
        if not generations:
            continue
        last = generations[-1]
        row: dict[str, Any] = {
            "turn": index,
            "user_text": user_text,
            "requests": len(generations),
            "reply_completion_tokens": sum(e.completion_tokens for e in generations),
            "prompt_tokens": generations[0].prompt_tokens,
            "prompt_parts": prompt_parts(
                generations[0], config.instructions, config.greeting or "", tokens
            ),
            "max_tokens": last.max_tokens,
            "reply_finish_tokens": tokens.count(last.content),
        }
        if records is None:
            row["least"] = tokens.count(last.content)
            row["generated"] = row["reply_completion_tokens"]
            row["excess"] = {"end_and_splits": row["generated"] - row["least"]}
        else:
            record = records[index]
            final = {
                name: record.get("fields", {}).get(name) for name in config.turn_schema.field_names
            }
            final["system_response"] = record.get("fields", {}).get(
                "system_response", record.get("reply")
            )
            own_calls = [
                e for e in fields_calls if (record.get("reply") or "\0") in e.last_user_text()
            ]
            for call in own_calls:
                fields_calls.remove(call)
            row["least"] = tokens.count(compact(final))
            row["fields_calls"] = len(own_calls)
            row["generated"] = row["reply_completion_tokens"] + sum(
                e.completion_tokens for e in own_calls
            )
            row["status"] = record.get("status")
            row["attempts"] = record.get("attempts")
            try:
                generated = json.loads(last.content)
            except ValueError:
                generated = None
            as_generated = tokens.count(last.content)
            written = tokens.count(compact(generated)) if isinstance(generated, dict) else None
            row["excess"] = {
                "formatting": as_generated - written if written is not None else None,
                "end_and_splits": row["reply_completion_tokens"] - as_generated,
                "fields_call": sum(e.completion_tokens for e in own_calls),
                "rest": (written - row["least"]) if written is not None else None,
            }
            row["generated_text"] = last.content
            row["least_text"] = compact(final)
        row["ratio"] = row["generated"] / row["least"] if row["least"] else None
        rows.append(row)
    calls = [
        {
            "kind": exchange_kind(e),
            "completion_tokens": e.completion_tokens,
            "prompt_tokens": e.prompt_tokens,
            "max_tokens": e.max_tokens,
        }
        for e in [*others, *fields_calls]
    ]
    return rows, calls


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


async def measure(stack: TokenStack, sessions: int) -> dict[str, Any]:
    assert stack.endpoints and stack.endpoints.local_llm_url
    tokens = Tokenizer(stack.endpoints.local_llm_url)
    ran: list[dict[str, Any]] = []
    for agent_id in stack.types:
        user_id = f"bench-tokens-{agent_id}-{uuid.uuid4().hex[:6]}"
        for index in range(sessions):
            messages = MESSAGES[agent_id][index % len(MESSAGES[agent_id])]
            for kind in ("switchboard", f"bare:{agent_id}"):
                session = await run_session(stack, kind, agent_id, messages, user_id)
                session["index"] = index
                ran.append(session)
                status = "ok" if session["ok"] else session.get("error")
                print(f"{agent_id} session {index} {kind.split(':')[0]}: {status}", flush=True)
    records = await stack.records([s["room"] for s in ran if s["kind"] == "switchboard"])

    per_type: dict[str, Any] = {}
    for agent_id in stack.types:
        config = stack.configs[agent_id]
        mine = [s for s in ran if s["agent_id"] == agent_id]
        entry: dict[str, Any] = {"sessions": []}
        for session in mine:
            is_sb = session["kind"] == "switchboard"
            rows, calls = turns_of(
                session, records.get(session["room"], []) if is_sb else None, config, tokens
            )
            entry["sessions"].append(
                {
                    "system": "switchboard" if is_sb else "bare",
                    "index": session["index"],
                    "room": session["room"],
                    "ok": session["ok"],
                    "error": session.get("error"),
                    "quiet": session["quiet"],
                    "turns": rows,
                    "other_calls": calls,
                    "requests": len(session["exchanges"]),
                    "completion_tokens": sum(e.completion_tokens for e in session["exchanges"]),
                    "prompt_tokens": sum(e.prompt_tokens for e in session["exchanges"]),
                }
            )
        entry["summary_config"] = config.summary.model_dump()
        per_type[agent_id] = entry
    return {"types": per_type}


def report(result: dict[str, Any]) -> dict[str, Any]:
    """Print the tables; return the aggregates written beside the samples."""
    turn_rows, prompt_rows, summary_rows, session_rows = [], [], [], []
    totals: dict[str, Any] = {}
    all_sb: list[dict[str, Any]] = []
    all_bare: list[dict[str, Any]] = []
    for agent_id, entry in result["types"].items():
        sb = [t for s in entry["sessions"] if s["system"] == "switchboard" for t in s["turns"]]
        bare = [t for s in entry["sessions"] if s["system"] == "bare" for t in s["turns"]]
        all_sb += sb
        all_bare += bare
        for session in entry["sessions"]:
            for turn in session["turns"]:
                excess = turn.get("excess", {})
                turn_rows.append(
                    [
                        agent_id,
                        f"{session['system']} s{session['index']} t{turn['turn']}",
                        str(turn["generated"]),
                        str(turn["least"]),
                        fmt(turn["ratio"], digits=2),
                        str(excess.get("formatting", "-")),
                        str(excess.get("end_and_splits", "-")),
                        str(excess.get("fields_call", "-")),
                        str(excess.get("rest", "-")),
                        str(turn["requests"] + turn.get("fields_calls", 0)),
                    ]
                )
        parts = [
            "instructions",
            "field_instructions",
            "memory",
            "conversation",
            "tools",
            "template",
        ]
        for system, rows in (("switchboard", sb), ("bare", bare)):
            prompt_rows.append(
                [
                    agent_id,
                    system,
                    fmt(mean([t["prompt_tokens"] for t in rows]), digits=0),
                    *[fmt(mean([t["prompt_parts"][p] for t in rows]), digits=0) for p in parts],
                ]
            )
        sb_sessions = [s for s in entry["sessions"] if s["system"] == "switchboard"]
        bare_sessions = [s for s in entry["sessions"] if s["system"] == "bare"]
        summaries = [c for s in sb_sessions for c in s["other_calls"] if c["kind"] == "summary"]
        configured = entry["summary_config"].get("max_tokens")
        for call in summaries:
            bound = min(b for b in (call["max_tokens"], configured) if b is not None)
            summary_rows.append(
                [
                    agent_id,
                    str(call["completion_tokens"]),
                    str(call["max_tokens"]),
                    str(configured if configured is not None else "-"),
                    "yes" if call["completion_tokens"] <= bound else "NO",
                    str(call["prompt_tokens"]),
                ]
            )
        sb_gen = sum(s["completion_tokens"] for s in sb_sessions)
        bare_gen = sum(s["completion_tokens"] for s in bare_sessions)
        session_rows.append(
            [
                agent_id,
                f"{sum(s['requests'] for s in sb_sessions)}/{sum(s['requests'] for s in bare_sessions)}",
                f"{sb_gen}/{bare_gen}",
                fmt(sb_gen / bare_gen if bare_gen else None, digits=2),
                str(sum(c["completion_tokens"] for c in summaries)),
                f"{sum(s['prompt_tokens'] for s in sb_sessions)}/{sum(s['prompt_tokens'] for s in bare_sessions)}",
            ]
        )
        totals[agent_id] = aggregate(sb, bare)
        totals[agent_id]["summaries"] = summaries
        totals[agent_id]["summary_config"] = entry["summary_config"]
    totals["all"] = aggregate(all_sb, all_bare)

    print_table(
        "generated tokens per turn against the least the turn needs (compact JSON of the reply "
        "and its fields; bare: its reply text) and where the excess went",
        [
            "type",
            "turn",
            "generated",
            "least",
            "ratio",
            "format",
            "end+splits",
            "fields call",
            "rest",
            "requests",
        ],
        turn_rows,
    )
    print_table(
        "prompt tokens per turn (mean of the turns' reply requests) and what they are made of",
        [
            "type",
            "system",
            "prompt",
            "instructions",
            "field instr.",
            "memory",
            "conversation",
            "tools",
            "template",
        ],
        prompt_rows,
    )
    print_table(
        "summary per session: completion tokens against the bound its request carried and the "
        "type's summary config",
        ["type", "summary tokens", "request max_tokens", "summary.max_tokens", "bounded", "prompt"],
        summary_rows,
    )
    print_table(
        "per type, all sessions (Switchboard/bare)",
        ["type", "requests", "generated", "gen ratio", "of which summaries", "prompt"],
        session_rows,
    )
    every = totals["all"]
    print(
        f"\nall turns: Switchboard generated {every['sb_generated']} tokens where the turns need "
        f"{every['sb_least']} = {fmt(every['sb_ratio'], digits=3)}x (target <= {TARGET}x; worst turn "
        f"{fmt(every['sb_ratio_max'], digits=2)}x, {every['sb_turns_over_target']} of "
        f"{every['sb_turns']} turns over); bare worker (the same counting on plain replies) "
        f"{fmt(every['bare_ratio'], digits=3)}x. Prompt tokens per turn: Switchboard "
        f"{fmt(every['sb_prompt_mean'], digits=0)}, bare {fmt(every['bare_prompt_mean'], digits=0)} = "
        f"{fmt(every['prompt_ratio'], digits=2)}x."
    )
    return totals


def aggregate(sb: list[dict[str, Any]], bare: list[dict[str, Any]]) -> dict[str, Any]:
    sb_generated = sum(t["generated"] for t in sb)
    sb_least = sum(t["least"] for t in sb)
    bare_generated = sum(t["generated"] for t in bare)
    bare_least = sum(t["least"] for t in bare)
    ratios = [t["ratio"] for t in sb if t["ratio"] is not None]
    sb_prompt = mean([t["prompt_tokens"] for t in sb])
    bare_prompt = mean([t["prompt_tokens"] for t in bare])
    excess: dict[str, int] = {}
    for turn in sb:
        for key, value in turn.get("excess", {}).items():
            excess[key] = excess.get(key, 0) + (value or 0)
    return {
        "sb_turns": len(sb),
        "sb_generated": sb_generated,
        "sb_least": sb_least,
        "sb_ratio": sb_generated / sb_least if sb_least else None,
        "sb_ratio_max": max(ratios, default=None),
        "sb_ratio_p50": statistics.median(ratios) if ratios else None,
        "sb_turns_over_target": sum(1 for r in ratios if r > TARGET),
        "sb_excess": excess,
        "bare_turns": len(bare),
        "bare_generated": bare_generated,
        "bare_least": bare_least,
        "bare_ratio": bare_generated / bare_least if bare_least else None,
        "sb_prompt_mean": sb_prompt,
        "bare_prompt_mean": bare_prompt,
        "prompt_ratio": sb_prompt / bare_prompt if sb_prompt and bare_prompt else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2, help="sessions per type and system")
    parser.add_argument(
        "--types", nargs="+", default=list(MESSAGES), choices=list(MESSAGES), metavar="AGENT_ID"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=None, help="override every type's llm.max_tokens"
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="override every type's temperature"
    )
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.max_tokens is not None:
        overrides["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    info = machine_info()
    started = time.time()
    with TokenStack(args.types, overrides) as stack:
        print(f"logs: {stack.run_dir / 'logs'}", flush=True)
        result = asyncio.run(measure(stack, args.sessions))
    totals = report(result)
    path = write_results(
        "tokens",
        {
            "machine": info,
            "args": vars(args),
            "wall_s": time.time() - started,
            "target": TARGET,
            "totals": totals,
            "results": result,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
