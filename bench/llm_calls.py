"""What each kind of LLM call costs on the idle local LLM: a plain chat reply (what the bare
worker sends), Switchboard's reply with its turn fields in one constrained call, the separate
structured-turn call (now only the retry path) and the closing summary.

    .venv/bin/python -m bench.llm_calls            # alone: its own devstack
    (bench/concurrent_sessions.py runs it first, on its own stack)

Uses the seeded support agent type through the worker's own code: the reply goes through the
OpenAI client with the agent type's instructions, greeting and sampling (streamed, as
livekit's plugin does); the reply with fields with `worker.turn_stream`'s instructions and
response format, timed to the end of the reply's words and to the end of the fields; the
structured turn through `worker.turns.TurnFiller`, the summary through `worker.turns.summarize`.
Sequential, on an idle server: the cost of one call alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import SUPPORT_AGENT, fmt, print_table, summary

USER_TEXT = "My login is not working since this morning."


async def measure(
    mongo_uri: str, db_name: str, llm_url: str, reps: int = 3, embedded: bool = False
) -> dict[str, Any]:
    """`embedded`: `llm_url` is the embedded llama.cpp (LOCAL_LLM_EMBEDDED), which the worker
    sends a turn's schema as a compact-JSON grammar rather than a `response_format`."""
    from openai import AsyncOpenAI

    from agent_configs.database import open_client
    from agent_configs.store import ConfigStore
    from worker import turn_stream
    from worker.providers import chat_endpoints
    from worker.settings import WorkerSettings
    from worker.turns import Message, StructuredCaller, TurnFiller, Usage, summarize

    client = open_client(mongo_uri)
    try:
        config = await ConfigStore(client[db_name]).get(SUPPORT_AGENT)
    finally:
        await client.close()
    settings = WorkerSettings(local_llm_url=llm_url, local_llm_embedded=embedded)
    endpoint = chat_endpoints(config.llm, settings)[0]
    openai = AsyncOpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0, timeout=120
    )

    calls: dict[str, list[dict[str, float]]] = {
        "reply": [],
        "reply + fields": [],
        "structured turn": [],
        "summary": [],
    }

    async def streamed_call(
        kind: str, instructions: str, max_tokens: int | None, **extra: Any
    ) -> str:
        started = time.perf_counter()
        first = words_end = None
        chunks: list[str] = []
        usage = None
        extractor = turn_stream.ReplyExtractor() if extra else None
        options: dict[str, Any] = {"temperature": endpoint.temperature, **extra}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        stream = await openai.chat.completions.create(
            model=endpoint.model,
            messages=[
                {"role": "system", "content": instructions},
                {"role": "assistant", "content": config.greeting or ""},
                {"role": "user", "content": USER_TEXT},
            ],
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                content = chunk.choices[0].delta.content
                chunks.append(extractor.feed(content) if extractor else content)
                if extractor and extractor.reply_done and words_end is None:
                    words_end = time.perf_counter()
            if chunk.usage is not None:
                usage = chunk.usage
        ended = time.perf_counter()
        calls[kind].append(
            {
                "ms": (ended - started) * 1000,
                "first_token_ms": ((first or ended) - started) * 1000,
                "words_ms": ((words_end or ended) - started) * 1000,
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
            }
        )
        return "".join(chunks)

    reply_text = ""
    for _ in range(reps):
        reply_text = await streamed_call("reply", config.instructions, endpoint.max_tokens)
    for _ in range(reps):
        await streamed_call(
            "reply + fields",
            turn_stream.instructions(config.instructions, config.turn_schema),
            turn_stream.call_max_tokens(endpoint.max_tokens, config.turn_schema),
            **endpoint.structured_options(  # as the worker sends it
                turn_stream.response_format(config.turn_schema, endpoint.max_tokens, bounded=True)
            ),
        )
    await openai.close()

    history = [
        Message("assistant", config.greeting or ""),
        Message("user", USER_TEXT),
        Message("assistant", reply_text),
    ]
    for _ in range(reps):
        used = Usage()
        filler = TurnFiller(
            StructuredCaller([endpoint], usage=used), config.turn_schema, config.name
        )
        started = time.perf_counter()
        filled = await filler.fill(history, reply_text)
        calls["structured turn"].append(
            {
                "ms": (time.perf_counter() - started) * 1000,
                "prompt_tokens": used.prompt_tokens,
                "completion_tokens": used.completion_tokens,
                "attempts": filled.attempts,
                "ok": 1.0 if filled.status == "ok" else 0.0,
            }
        )
    for _ in range(reps):
        used = Usage()
        started = time.perf_counter()
        await summarize(StructuredCaller([endpoint], usage=used), history, config.name)
        calls["summary"].append(
            {
                "ms": (time.perf_counter() - started) * 1000,
                "prompt_tokens": used.prompt_tokens,
                "completion_tokens": used.completion_tokens,
            }
        )

    # StructuredCaller opens an AsyncOpenAI client per call and never closes it (as the worker
    # does per turn); collect them while the loop still runs, so their close can finish.
    gc.collect()
    await asyncio.sleep(0.2)

    result: dict[str, Any] = {}
    rows = []
    for kind, samples in calls.items():
        words = summary([s.get("words_ms", s["ms"]) for s in samples])
        ms = summary([s["ms"] for s in samples])
        prompt = summary([s["prompt_tokens"] for s in samples])["p50"]
        completion = summary([s["completion_tokens"] for s in samples])["p50"]
        attempts = summary([s.get("attempts", 1.0) for s in samples])["mean"]
        result[kind] = {
            "ms": ms,
            "words_ms": words,
            "prompt_tokens_p50": prompt,
            "completion_tokens_p50": completion,
            "attempts_mean": attempts,
            "samples": samples,
        }
        rows.append(
            [
                kind,
                fmt(words["p50"], digits=0),
                fmt(ms["p50"], digits=0),
                fmt(ms["max"], digits=0),
                fmt(prompt, digits=0),
                fmt(completion, digits=0),
                fmt(attempts, digits=1),
            ]
        )
    reply_ms = result["reply"]["ms"]["p50"] or 1.0
    per_session = 2 * (result["reply + fields"]["ms"]["p50"] or 0) + (
        result["summary"]["ms"]["p50"] or 0
    )
    result["llm_ms_per_session"] = {"bare": 2 * reply_ms, "switchboard": per_session}
    print_table(
        f"one LLM call alone on the idle local LLM (ms; {reps} each; max_tokens {endpoint.max_tokens}, "
        f"temperature {endpoint.temperature}); 'words' = until the user has the whole reply",
        ["call", "words p50", "p50", "max", "prompt tok", "gen tok", "attempts"],
        rows,
    )
    print(
        f"LLM time per session (greeting + 2 replies), calls alone: bare {2 * reply_ms:.0f} ms, "
        f"Switchboard {per_session:.0f} ms (2 replies with fields + summary; the structured-turn "
        f"call only runs as a retry) = {per_session / (2 * reply_ms):.1f}x"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args()
    from bench.harness import drop_database, machine_info, seed_database, write_results
    from devstack import DEFAULT_ROOT, Devstack

    info = machine_info()
    with (
        tempfile.TemporaryDirectory() as run_dir,
        Devstack(DEFAULT_ROOT, run_dir=Path(run_dir)) as endpoints,
    ):
        assert endpoints.local_llm_url, (
            "the local model stack is not installed: run `make test` once"
        )
        name = f"bench_llm_{uuid.uuid4().hex[:8]}"
        overrides = {"temperature": args.temperature, "max_tokens": args.max_tokens}
        asyncio.run(seed_database(endpoints.mongo_uri, name, overrides))
        result = asyncio.run(
            measure(
                endpoints.mongo_uri,
                name,
                endpoints.local_llm_url,
                args.reps,
                embedded=endpoints.local_llm_embedded,
            )
        )
        asyncio.run(drop_database(endpoints.mongo_uri, name))
    path = write_results("llm_calls", {"machine": info, "args": vars(args), "results": result})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
