"""What a binding accepts and what the hub's per-user limit does, without any service."""

import time

import pytest
from pydantic import ValidationError

from agent_configs.channels import (
    CHANNEL_KEY,
    ChannelBinding,
    ChannelKind,
    HttpChatSettings,
    TelegramSettings,
    WidgetSettings,
    channel_of_job,
)
from channels.hub import next_event_seq
from channels.limits import SlidingWindow


def http(**more: object) -> ChannelBinding:
    values: dict[str, object] = {
        "binding_id": "shop",
        "kind": ChannelKind.HTTP,
        "purpose": "support",
        "http": HttpChatSettings(keys=["backend"]),
    }
    return ChannelBinding.model_validate(values | more)


def test_a_binding_names_exactly_one_target_and_only_its_own_kinds_settings() -> None:
    with pytest.raises(ValidationError, match="agent_id / purpose: give exactly one"):
        http(agent_id="support-agent-v1")
    with pytest.raises(ValidationError, match="agent_id / purpose: give exactly one"):
        http(purpose=None)
    with pytest.raises(ValidationError, match="telegram: only for a telegram binding"):
        http(telegram=TelegramSettings(token_env="BOT_TOKEN"))
    with pytest.raises(ValidationError, match="http: required for a http binding"):
        http(http=None)
    with pytest.raises(ValidationError, match="webhook_secret_env: required in webhook mode"):
        TelegramSettings(token_env="BOT_TOKEN", mode="webhook")
    with pytest.raises(ValidationError, match=r"origins\[1\]: .* is not an origin"):
        WidgetSettings(origins=["https://shop.example", "https://shop.example/chat"])


def test_the_trusted_user_id_is_prefixed_by_the_binding_unless_the_operator_shares_one() -> None:
    assert http().trusted_user_id("u-1") == "http:shop:u-1"
    assert http(user_id_prefix="shop:").trusted_user_id("u-1") == "shop:u-1"
    assert http().routing_metadata() == {"purpose": "support"}


def test_only_a_well_formed_channel_mark_reaches_the_session_record() -> None:
    mark = http().channel_mark("c-1")
    assert channel_of_job({CHANNEL_KEY: mark}) == mark
    assert channel_of_job({CHANNEL_KEY: "http"}) is None
    assert channel_of_job({CHANNEL_KEY: mark | {"binding_id": ""}}) is None
    assert channel_of_job({}) is None


def test_the_rate_limit_admits_up_to_its_count_per_window_and_says_how_long_to_wait() -> None:
    window = SlidingWindow()
    assert window.admit("u-1", 2, 60) is None
    assert window.admit("u-1", 2, 60) is None
    wait = window.admit("u-1", 2, 60)
    assert wait is not None and 59 < wait <= 60
    assert window.admit("u-2", 2, 60) is None, "each user has a window of their own"


def test_users_who_stopped_writing_are_forgotten() -> None:
    window = SlidingWindow()
    for user in range(1000):
        window.admit(user, 5, 0.01)
    time.sleep(0.02)
    window.sweep(0.01)
    assert len(window) == 0


def test_a_conversations_events_keep_their_order_within_one_millisecond() -> None:
    seqs = [next_event_seq() for _ in range(1000)]
    assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False))
