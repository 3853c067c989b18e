"""Together's uploaded files through the adapter (`list_files`, `delete_file`) and the client
(`files`, `delete_file`), the real `together` SDK answered in-process by `FakeTogether`."""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("together")


from tests.together_adapter.fake_api import FakeTogether
from unitune import FineTuneClient, NotFoundError, ProviderError
from unitune.providers.together import TogetherProvider


def _add(api: FakeTogether, name: str, *, created_at: int, purpose: str = "fine-tune") -> str:
    file_id = api._new_file(name, purpose=purpose)
    api.files[file_id].update(created_at=created_at, bytes=42, processing_status="COMPLETED")
    return file_id


def test_list_files_maps_the_answer_newest_first_fine_tune_only(
    api: FakeTogether, provider: TogetherProvider
) -> None:
    old = _add(api, "old.jsonl", created_at=1_763_000_000)
    _add(api, "batch.jsonl", created_at=1_763_500_000, purpose="batch-api")  # not for fine-tuning
    new = _add(api, "new.jsonl", created_at=1_763_769_600)
    files = provider.list_files()
    assert [f.id for f in files] == [new, old]
    top = files[0]
    assert top.provider == "together"
    assert top.filename == "new.jsonl"
    assert top.size_bytes == 42
    assert top.created_at == dt.datetime.fromtimestamp(1_763_769_600, dt.timezone.utc)
    assert top.raw["purpose"] == "fine-tune"
    assert [f.id for f in provider.list_files(limit=1)] == [new]
    assert len(api.calls("GET", "/v1/files")) == 2  # one answer holds the whole list


def test_delete_file_deletes_and_a_missing_one_is_not_found(
    api: FakeTogether, provider: TogetherProvider
) -> None:
    file_id = _add(api, "a.jsonl", created_at=1_763_000_000)
    provider.delete_file(file_id)
    assert file_id not in api.files
    assert len(api.calls("DELETE", f"/v1/files/{file_id}")) == 1
    with pytest.raises(NotFoundError):
        provider.delete_file(file_id)


def test_delete_file_that_is_not_deleted_is_an_error(api: FakeTogether, provider: TogetherProvider) -> None:
    file_id = _add(api, "a.jsonl", created_at=1_763_000_000)
    original = api._delete_file
    api._routes = [
        (m, p, (lambda request, fid: (200, {"id": fid, "deleted": False})) if fn == original else fn)
        for m, p, fn in api._routes
    ]
    with pytest.raises(ProviderError, match="without deleting it"):
        provider.delete_file(file_id)


def test_client_files_and_delete_file_retried_after_a_lost_answer(
    api: FakeTogether, client: FineTuneClient
) -> None:
    file_id = _add(api, "a.jsonl", created_at=1_763_000_000)
    assert [f.id for f in client.files()] == [file_id]
    api.fail(f"DELETE /v1/files/{file_id}", 503, after_effect=True)  # deleted, but the answer is lost
    client.delete_file(file_id)
    assert file_id not in api.files
    assert client.files() == []
