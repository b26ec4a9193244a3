"""GET /api/v1/dead-letters: what the no-loss writer could not store, as it wrote it there."""

from pathlib import Path

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.writer import DEAD_LETTERS, NoLossWriter, Record
from tests.admin_api.conftest import Keys

DEAD = "/api/v1/dead-letters"


async def test_viewers_see_a_dead_letter_with_its_reason_and_where_the_whole_record_is(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, tmp_path: Path
) -> None:
    writer = NoLossWriter(database, tmp_path / "spool", collections={"turns"})
    writer.submit(Record("turns", "s:0", {"fields": {"answer": object()}}))  # BSON cannot encode it
    writer.submit(Record("turns", "s:1", {"turn_index": 1}))
    assert await writer.close(deadline_s=10) is None
    assert await database[DEAD_LETTERS].count_documents({}) == 1

    response = await api.get(DEAD, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    [letter] = response.json()["items"]
    assert letter["collection"] == "turns" and letter["record_id"] == "s:0"
    assert letter["kind"] == "unencodable" and letter["error"] == "InvalidDocument"
    assert "cannot encode object" in letter["reason"] and "answer" in letter["preview"]
    assert (Path(letter["spool_dir"]) / letter["file"]).is_file()

    filtered = await api.get(DEAD, params={"collection": "sessions"}, headers=keys.header("viewer"))
    assert filtered.json()["items"] == []


async def test_dead_letters_need_a_reader_key(api: httpx.AsyncClient, keys: Keys) -> None:
    anonymous = await api.get(DEAD)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert (await api.get(DEAD, headers=keys.header("token"))).status_code == 403
    assert (
        await api.get(DEAD, params={"cursor": "nonsense"}, headers=keys.header("admin"))
    ).status_code == 422
