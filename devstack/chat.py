"""`python -m devstack chat`: talk to an agent from the terminal, as a frontend would.

Joins a fresh room with your metadata, prints which agent type the router chose, the agent's
replies, and each turn's structured fields; every line you type goes to `lk.chat`.
"""

import asyncio
import json
import sys
from typing import Any

from rich.console import Console

from devstack.frontend import RoomClient

console = Console()
REPLY_WAIT_S = 120.0


def _show_new(client: RoomClient, shown: dict[str, int]) -> None:
    for text in client.transcripts[shown["text"] :]:
        console.print(f"[bold cyan]agent:[/bold cyan] {text}", highlight=False)
    shown["text"] = len(client.transcripts)
    turns = client.data.get("agent-turn", [])
    for turn in turns[shown["turns"] :]:
        fields = {k: v for k, v in turn["fields"].items() if k != "system_response"}
        console.print(
            f"[dim]  turn {turn['turn_index']}: {json.dumps(fields)}[/dim]", highlight=False
        )
    shown["turns"] = len(turns)


async def chat(
    url: str, api_key: str, api_secret: str, agent_name: str, metadata: dict[str, Any]
) -> None:
    client = RoomClient(url, api_key, api_secret, agent_name)
    await client.join(metadata)
    console.print(
        f"joined {client.room_name} with {json.dumps(metadata)}; waiting for the agent..."
    )
    agent_id, strategy = await client.routed_agent()
    console.print(
        f"[green]routed to {agent_id} by {strategy}[/green]. Type a message; Ctrl-D to leave."
    )
    shown = {"text": 0, "turns": 0}
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop.add_reader(sys.stdin, lambda: lines.put_nowait(sys.stdin.readline() or None))
    said = 0
    try:
        while True:
            _show_new(client, shown)
            try:
                line = await asyncio.wait_for(lines.get(), 0.3)
            except TimeoutError:
                continue
            if line is None:
                break
            if line.strip():
                await client.say(line.strip())
                said += 1
        # Piped input ends at once: wait for the last message's turn before leaving. Its
        # `agent-turn` comes for every answer, also one the user never saw as text (a blank
        # reply, a failed model): waiting for a transcript would wait out REPLY_WAIT_S then.
        await client.wait_for(
            lambda: len(client.data.get("agent-turn", [])) >= said, REPLY_WAIT_S, "the last turn"
        )
        _show_new(client, shown)
    except AssertionError:
        _show_new(client, shown)
        console.print("[yellow]no reply to the last message yet; leaving[/yellow]")
    finally:
        loop.remove_reader(sys.stdin)
        await client.leave()
        summary = client.data.get("conversation-summary")
        if summary:
            console.print(f"[dim]summary: {summary[0]['summary']}[/dim]")
