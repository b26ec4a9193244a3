"""The channel benches' pure helpers: each path goes first in turn, and the per-conversation
figures of the idle bench are slopes, not totals."""

from bench.channel_overhead import rotated
from bench.idle_conversations import per_open_conversation, slope


def test_each_path_goes_first_in_turn_across_rounds() -> None:
    names = ["direct", "http", "amqp"]
    assert [rotated(names, r)[0] for r in range(4)] == ["direct", "http", "amqp", "direct"]
    assert sorted(rotated(names, 2)) == sorted(names)


def test_memory_per_open_conversation_is_the_slope_over_paired_samples() -> None:
    paired = [(0, 100, 50), (2, 300, 150), (4, 500, 250)]
    found = per_open_conversation(paired)
    assert found["rss"] == 100 and found["pss"] == 50
    assert per_open_conversation([(3, 1, 1), (3, 2, 2)])["rss"] is None


def test_growth_per_conversation_is_taken_between_the_first_and_last_checkpoints() -> None:
    batches = [
        {"conversations_so_far": 100, "memory": {"rss": 1_000, "pss": 800}},
        {"conversations_so_far": 300, "memory": {"rss": 3_000, "pss": 800}},
    ]
    assert slope(batches, "rss") == 10 and slope(batches, "pss") == 0
    assert slope(batches[:1], "rss") is None
