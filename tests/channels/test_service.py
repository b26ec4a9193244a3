"""The channels service's HTTP side when the database does not answer: a 503 problem the
caller may retry, never a bare 500 (service-free: the database is a port nothing listens on)."""

from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

from agent_configs.channels import ChannelBinding, ChannelKind, HttpChatSettings
from agent_configs.egress import EgressPolicy
from channels.http_api import HttpChatRunner
from channels.service import ChannelService
from channels.settings import ChannelSettings
from devstack.services import reserve_port


async def test_a_database_that_does_not_answer_is_a_503_to_retry(tmp_path: Path) -> None:
    nobody = reserve_port(0, "nothing listens here", "UNUSED")
    client: AsyncMongoClient = AsyncMongoClient(
        f"mongodb://127.0.0.1:{nobody}/", serverSelectionTimeoutMS=200
    )
    settings = ChannelSettings(channels_spool_dir=tmp_path, switchboard_dev_mode=True)
    service = ChannelService(settings, client["channels"], EgressPolicy())
    binding = ChannelBinding(
        binding_id="shop",
        kind=ChannelKind.HTTP,
        purpose="support",
        http=HttpChatSettings(keys=["backend"]),
    )
    service._runners["shop"] = (binding, HttpChatRunner(binding, service.hub, service.context))
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://channels") as http:
        answer = await http.post(
            "/v1/channels/shop/conversations",
            json={"user_id": "u-1"},
            headers={"Authorization": "Bearer sbk_anything"},
        )
    await client.close()
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unavailable" and answer.headers["Retry-After"] == "1"


async def test_a_stopping_service_answers_503_to_retry_elsewhere(tmp_path: Path) -> None:
    """Once a SIGTERM'd service has stopped its runners, a post or a webhook call that still
    reaches it is told to come back (to another replica), not that the binding is unknown."""
    client: AsyncMongoClient = AsyncMongoClient("mongodb://127.0.0.1:1/", connect=False)
    settings = ChannelSettings(channels_spool_dir=tmp_path, switchboard_dev_mode=True)
    service = ChannelService(settings, client["channels"], EgressPolicy())
    service._stopping = True
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://channels") as http:
        post = await http.post(
            "/v1/channels/shop/conversations/c-1/messages",
            json={"text": "hi"},
            headers={"Authorization": "Bearer sbk_anything"},
        )
        webhook = await http.post("/telegram/shop-bot", json={"update_id": 1})
    await client.close()
    assert post.status_code == 503 and post.json()["code"] == "unavailable"
    assert post.headers["Retry-After"] == "1"
    assert webhook.status_code == 503
