"""OpenAI's uploaded files through the adapter (`list_files`, `delete_file`) and the client
(`files`, `delete_file`), the real `openai` SDK answered in-process by `FakeOpenAI`."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path

import pytest

pytest.importorskip("openai")


from tests.openai_adapter.fake_api import FakeOpenAI
from unitune import FineTuneClient, NotFoundError, ProviderError
from unitune.providers.openai import OpenAIProvider
from unitune.types import PreparedFile


def _upload(provider: OpenAIProvider, tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    prepared = PreparedFile(
        path=path, filename=name, size_bytes=path.stat().st_size, sha256="x", purpose="training"
    )
    return provider.upload(prepared).id


def _add(api: FakeOpenAI, n: int, purpose: str = "fine-tune") -> list[str]:
    """Files put straight into the fake's state (no upload requests)."""
    ids = []
    for _ in range(n):
        file_id = api.new_id("file", 6)
        api.files[file_id] = {"id": file_id, "object": "file", "bytes": 10, "created_at": api.tick(),
                              "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}  # fmt: skip
        ids.append(file_id)
    return ids


def test_list_files_maps_the_answer_newest_first_fine_tune_only(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    first = _upload(provider, tmp_path, "a.jsonl")
    _add(api, 1, purpose="batch")  # not a fine-tuning file: not listed
    second = _upload(provider, tmp_path, "b.jsonl")
    files = provider.list_files()
    assert [f.id for f in files] == [second, first]
    top = files[0]
    assert top.provider == "openai"
    assert top.filename == "b.jsonl"
    assert top.size_bytes == api.files[second]["bytes"]
    assert top.created_at == dt.datetime.fromtimestamp(api.files[second]["created_at"], dt.timezone.utc)
    assert top.raw["purpose"] == "fine-tune"
    listed = api.calls("GET", "/v1/files")
    assert listed[0].url.params["purpose"] == "fine-tune"
    assert listed[0].url.params["order"] == "desc"


def test_list_files_pages_up_to_the_limit(api: FakeOpenAI, provider: OpenAIProvider) -> None:
    ids = _add(api, 130)
    files = provider.list_files(limit=120)
    assert [f.id for f in files] == list(reversed(ids))[:120]
    listed = api.calls("GET", "/v1/files")
    assert len(listed) == 2
    assert listed[1].url.params["after"] == files[99].id
    assert len(provider.list_files(limit=5)) == 5


def test_delete_file_deletes_and_a_missing_one_is_not_found(
    api: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    file_id = _upload(provider, tmp_path, "a.jsonl")
    provider.delete_file(file_id)
    assert file_id not in api.files
    with pytest.raises(NotFoundError):
        provider.delete_file(file_id)


def test_delete_file_that_is_not_deleted_is_an_error(api: FakeOpenAI, provider: OpenAIProvider) -> None:
    (file_id,) = _add(api, 1)
    original = api._delete_file

    def refuse(request: typing.Any, fid: str) -> typing.Any:
        return 200, {"id": fid, "object": "file", "deleted": False}

    api._routes = [(m, p, refuse if fn == original else fn) for m, p, fn in api._routes]
    with pytest.raises(ProviderError, match="without deleting it"):
        provider.delete_file(file_id)


def test_client_files_and_delete_file(api: FakeOpenAI, client: FineTuneClient, tmp_path: Path) -> None:
    (file_id,) = _add(api, 1)
    assert [f.id for f in client.files()] == [file_id]
    client.delete_file(file_id)
    assert client.files() == []


def test_client_delete_file_retried_after_a_lost_answer_is_done(
    api: FakeOpenAI, client: FineTuneClient
) -> None:
    """The first DELETE deletes the file but its answer is lost (503); the retry's 404 means it is gone."""
    (file_id,) = _add(api, 1)
    api.fail(f"DELETE /v1/files/{file_id}", 503, after_effect=True)
    client.delete_file(file_id)
    assert len(api.calls("DELETE", f"/v1/files/{file_id}")) == 2
    assert file_id not in api.files


def test_client_delete_file_of_an_unknown_id_is_not_found(client: FineTuneClient) -> None:
    with pytest.raises(NotFoundError):
        client.delete_file("file-nope")
