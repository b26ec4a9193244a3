"""Per-user memory: earlier turns of the same user with the same agent type."""

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from worker.records import TURNS
from worker.turns import Message


async def load_past_messages(
    database: AsyncDatabase, agent_id: str, user_id: str, max_turns: int
) -> list[Message]:
    """Oldest first, as the conversation happened; each turn gives a user and an agent line."""
    cursor = (
        database[TURNS]
        .find(
            {"agent_id": agent_id, "user_id": user_id},
            {"user_text": 1, "fields.system_response": 1},
        )
        .sort("created_at", DESCENDING)
        .limit(max_turns)
    )
    turns = await cursor.to_list(length=max_turns)
    messages: list[Message] = []
    for turn in reversed(turns):
        if turn.get("user_text"):
            messages.append(Message("user", turn["user_text"]))
        reply = turn.get("fields", {}).get("system_response")
        if reply:
            messages.append(Message("assistant", reply))
    return messages
