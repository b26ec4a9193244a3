"""What one reply request sends, and what a user message may be: bounded in characters."""

from livekit.agents import llm

from worker.session import TRUNCATED_FROM, context_window, cut_user_message, user_message

INSTRUCTIONS = "You are a helpful agent. " * 40  # 1000 characters: never counted, never dropped


def conversation(*texts: str) -> llm.ChatContext:
    context = llm.ChatContext.empty()
    context.add_message(role="system", content=INSTRUCTIONS)
    for n, text in enumerate(texts):
        context.add_message(role="user" if n % 2 == 0 else "assistant", content=text)
    return context


def texts(context: llm.ChatContext) -> list[str]:
    return [item.text_content or "" for item in context.items if isinstance(item, llm.ChatMessage)]


def test_the_newest_whole_messages_within_the_character_cap_are_sent_with_the_instructions() -> (
    None
):
    full = conversation("a" * 400, "b" * 400, "c" * 400, "d" * 400)
    window = context_window(full, max_messages=40, max_chars=1000)
    assert texts(window) == [INSTRUCTIONS, "c" * 400, "d" * 400]
    assert len(full.items) == 5  # the session's own context is left as it is


def test_the_message_count_cap_still_applies_first() -> None:
    window = context_window(conversation("a", "b", "c", "d"), max_messages=2, max_chars=10_000)
    assert texts(window) == [INSTRUCTIONS, "c", "d"]


def test_the_message_being_answered_is_sent_even_when_it_alone_is_over_the_cap() -> None:
    window = context_window(conversation("a" * 10, "b" * 5000), max_messages=40, max_chars=1000)
    assert texts(window) == [INSTRUCTIONS, "b" * 5000]


def test_a_tool_call_is_never_sent_without_its_output() -> None:
    context = conversation("look it up")
    context.items.append(
        llm.FunctionCall(call_id="c1", name="lookup", arguments='{"q": "' + "z" * 100 + '"}')
    )
    context.items.append(
        llm.FunctionCallOutput(call_id="c1", name="lookup", output="x" * 500, is_error=False)
    )
    context.add_message(role="assistant", content="y" * 450)
    # the output fits beside the reply, its call does not: both stay out
    window = context_window(context, max_messages=40, max_chars=1000)
    assert [item.type for item in window.items] == ["message", "message"]  # instructions, the reply
    assert texts(window) == [INSTRUCTIONS, "y" * 450]


def test_a_typed_message_over_the_cap_is_cut_and_remembers_its_length() -> None:
    message = user_message("x" * 4500, 4000)
    assert message.text_content == "x" * 4000 and message.extra[TRUNCATED_FROM] == 4500
    short = user_message("hello", 4000)
    assert short.text_content == "hello" and TRUNCATED_FROM not in short.extra


def test_a_transcribed_message_over_the_cap_is_cut_in_place() -> None:
    message = llm.ChatMessage(role="user", content=["y" * 150])
    cut_user_message(message, 100)
    assert message.text_content == "y" * 100 and message.extra[TRUNCATED_FROM] == 150
