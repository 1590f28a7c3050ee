from __future__ import annotations

import orjson

from ragfleet.ingestion import jobs


def raw(states: dict[str, str | None]) -> dict[bytes, bytes]:
    meta = {"tenant": "t", "collection": "c", "created_at": 1.0, "documents": list(states)}
    out = {b"meta": orjson.dumps(meta)}
    for doc, state in states.items():
        if state:
            out[jobs.doc_field(doc).encode()] = jobs.doc_state(state, chunks=2)
    return out


def test_job_state_from_document_states() -> None:
    assert jobs.summarise("j", {}) is None
    assert jobs.summarise("j", raw({"a": "queued", "b": None}))["state"] == "queued"  # type: ignore[index]
    assert jobs.summarise("j", raw({"a": "succeeded", "b": "embedding"}))["state"] == "running"  # type: ignore[index]
    done = jobs.summarise("j", raw({"a": "succeeded", "b": "unchanged"}))
    assert done is not None and done["state"] == "succeeded" and done["chunks"] == 4
    failed = jobs.summarise("j", raw({"a": "succeeded", "b": "failed"}))
    assert failed is not None and failed["state"] == "failed" and failed["documents_failed"] == 1
