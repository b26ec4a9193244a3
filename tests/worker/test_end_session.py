"""`switchboard.end`: the user asks the agent to end the session and stays in the room, so it
receives the conversation summary before the agent leaves (the console's "End session")."""

import json

import pytest
from livekit import rtc
from pymongo.asynchronous.database import AsyncDatabase

from devstack.frontend import RoomClient
from tests.worker.conftest import agent_changed, wait_for_session_end
from tests.worker.scripted_llm import REPLY, ScriptedLLM

pytestmark = pytest.mark.usefixtures("text_only_agents")


def agent_present(client: RoomClient) -> bool:
    return any(
        p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        for p in client.room.remote_participants.values()
    )


async def test_a_user_who_ends_the_session_gets_the_summary_and_then_the_agent_leaves(
    client: RoomClient, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers and sums up: the order of summary and leaving is judged,
    and the embedded model's summary can fail (None) or its reply be blank."""
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "support", "user_id": "u-ends"})
        await client.next_transcript(0)  # the greeting
        await client.say("I was charged twice this month.")
        await client.next_turn(0)  # the reply and its fields

        left: list[int] = []  # summaries received when the agent left
        client.room.on(
            "participant_disconnected",
            lambda p: (
                p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                and left.append(len(client.data.get("conversation-summary", [])))
            ),
        )
        await client.room.local_participant.publish_data(
            json.dumps({}), reliable=True, topic="switchboard.end"
        )

        summaries = await client.wait_for(
            lambda: client.data.get("conversation-summary"), 120, "the summary"
        )
        await client.wait_for(lambda: not agent_present(client), 60, "the agent to leave")
        assert left == [1]  # the summary came first, while the agent was still in the room
        record = await wait_for_session_end(worker_database, client.room_name)
        assert record["end_reason"] == "user_ended"
        assert (
            summaries[0]["summary"] == record["summary"] == REPLY
            and summaries[0]["session_id"] == record["session_id"]
        )
