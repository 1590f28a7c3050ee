"""The metadata index selects exactly what the linear matcher (`MetadataFilter.matches`) selects,
through writes, deletes, label reuse and column merges; and filters of bounded complexity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ragfleet.common.errors import BadRequest, Unprocessable
from ragfleet.retrieval.store import metadata_index
from ragfleet.retrieval.store.base import (
    MAX_FILTER_FIELDS,
    MAX_FILTER_IN_VALUES,
    MAX_FILTER_VALUE_CHARS,
    Chunk,
    MetadataFilter,
    SearchQuery,
    parse_filters,
)
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore
from ragfleet.retrieval.store.metadata_index import MetadataIndex

FIELDS = ["a", "b"]
DATES = [
    "2024-01-15",
    "2024-01-15T00:00:00Z",
    "2024-01-15T01:00:00+02:00",
    "2023-12-31T23:59:59.999999",
    "1999-06-01",
]
BIG = 2**53 + 1  # not a float64: compared exactly, like the linear matcher does

# Small domains, so that values collide, ranges catch some and miss others, and ints meet floats.
numbers = st.sampled_from([-1, 0, 1, 2, 0.0, -0.0, 1.0, 1.5, float(2**53), 2**53, BIG, BIG + 1])
scalars = st.one_of(
    st.booleans(), numbers, st.floats(-3, 3, allow_nan=False), st.sampled_from(["x", "", "1", "true", *DATES])
)
values = st.one_of(
    numbers,
    numbers,
    st.sampled_from(DATES),
    scalars,
    st.none(),
    st.lists(scalars, max_size=2),
    st.just({"k": 1}),
)
metadata = st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=2)

numeric_bound = st.one_of(numbers, st.floats(-3, 3, allow_nan=False), st.just(float("inf")))
date_bound = st.sampled_from(DATES)
ops = st.sampled_from(["gt", "gte", "lt", "lte"])


@st.composite
def conditions(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["eq", "in", "shorthand", "range", "dates", "mixed", "null"]))
    if kind == "eq":
        return {"eq": draw(scalars)}
    if kind == "in":
        return {"in": draw(st.lists(scalars, min_size=1, max_size=4))}
    if kind == "shorthand":
        return draw(st.one_of(scalars, st.lists(scalars, min_size=1, max_size=3)))
    if kind == "null":  # no operator left: any non-null value matches
        return {"eq": None}
    bound = date_bound if kind == "dates" else numeric_bound
    condition = {op: draw(bound) for op in draw(st.lists(ops, min_size=1, max_size=3, unique=True))}
    if kind == "mixed":
        condition["eq"] = draw(scalars)
    return condition


filters = st.dictionaries(st.sampled_from([*FIELDS, *FIELDS, "absent"]), conditions(), min_size=1, max_size=2)
# A sequence of writes: (label, metadata) puts, None removes the label. Few labels, so that
# labels are replaced and reused often.
LABELS = 8
writes = st.lists(
    st.tuples(st.integers(0, LABELS - 1), st.one_of(st.none(), metadata, metadata, metadata)),
    min_size=5,
    max_size=60,
)


def linear(live: dict[int, dict[str, Any]], metadata_filter: MetadataFilter, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    for label, meta in live.items():
        mask[label] = metadata_filter.matches(meta)
    return mask


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Corners random data seldom reaches: a merged value removed (stale) while others wait; an int
# float64 cannot hold, against a float bound; gt and gte (lt and lte) on one value; ISO dates
# with offsets and without a zone; a value replaced by one of another kind.
@example(
    writes=[(0, {"a": 1}), (1, {"a": 2}), (2, {"a": 3}), (0, None), (1, {"a": "x"})],
    queries=[{"a": {"gte": 0}}, {"a": {"eq": None}}],
    compact_after=2,
)
@example(writes=[(0, {"a": BIG}), (1, {"a": 2**53})], queries=[{"a": {"gt": float(2**53)}}], compact_after=0)
@example(
    writes=[(0, {"a": 1}), (1, {"a": 1.0}), (2, {"a": True})],
    queries=[{"a": {"gt": 1, "gte": 1}}, {"a": {"lt": 1, "lte": 1}}, {"a": {"gte": 1, "lte": 1}}, {"a": 1}],
    compact_after=256,
)
@example(
    writes=[(0, {"a": "2024-01-15T01:00:00+02:00"}), (1, {"a": "2024-01-15"}), (2, {"b": "2024-01-15"})],
    queries=[
        {"a": {"lt": "2024-01-15T00:00:00Z"}},
        {"a": {"gte": "2024-01-14T23:00:00"}},
        {"a": "2024-01-15"},
    ],
    compact_after=0,
)
@given(
    writes=writes,
    queries=st.lists(filters, min_size=1, max_size=4),
    compact_after=st.sampled_from([0, 2, 256]),
)
def test_the_index_selects_what_the_linear_matcher_selects(
    writes: list[tuple[int, dict[str, Any] | None]], queries: list[dict[str, Any]], compact_after: int
) -> None:
    original = metadata_index.COMPACT_AFTER
    # As CollectionIndex does: compact() after every write, which merges once more than
    # `compact_after` values wait (0: always; 256: never before the end).
    metadata_index.COMPACT_AFTER = compact_after
    try:
        index, live = MetadataIndex(), {}
        for label, meta in writes:
            if label in live:
                index.remove(label, live.pop(label))
            if meta is not None:
                index.add(label, meta)
                live[label] = meta
            index.compact()
            for raw in queries:  # between writes too: with values pending and stale
                parsed = parse_filters(raw)
                assert parsed is not None
                np.testing.assert_array_equal(
                    index.mask(parsed, LABELS), linear(live, parsed, LABELS), str(raw)
                )
        index.compact(force=True)
        for raw in queries:
            parsed = parse_filters(raw)
            assert parsed is not None
            np.testing.assert_array_equal(index.mask(parsed, LABELS), linear(live, parsed, LABELS), str(raw))
    finally:
        metadata_index.COMPACT_AFTER = original


async def test_filtered_searches_follow_writes_deletes_and_a_reload(tmp_path: Path) -> None:
    """Through the store: the index is kept on upsert (replacing a chunk's metadata), delete and a
    reopen from the snapshot and the log."""
    vector = np.ones(8, dtype=np.float32)

    def chunk(i: int, **meta: Any) -> Chunk:
        return Chunk(id=f"c{i}", document_id=f"d{i}", text="t", vector=vector, metadata=meta)

    store = EmbeddedVectorStore(tmp_path, dim=8)
    await store.upsert("t", "c", [chunk(i, year=2000 + i, lang="en" if i % 2 else "fr") for i in range(600)])

    async def ids(filters: dict[str, Any], on: EmbeddedVectorStore = store) -> set[str]:
        hits = await on.search("t", "c", SearchQuery(vector=vector, top_k=1000, filters=filters))
        return {h.id for h in hits}

    assert len(await ids({"year": {"gte": 2500}})) == 100
    await store.upsert("t", "c", [chunk(599, year=1, lang="de")])  # replaced: old values forgotten
    await store.delete_chunks("t", "c", ["c598", "c597"])
    assert await ids({"year": {"gte": 2590}}) == {f"c{i}" for i in range(590, 597)}
    assert await ids({"lang": "de"}) == {"c599"}
    assert await ids({"lang": "en", "year": {"lt": 2006}}) == {"c1", "c3", "c5"}
    await store.close()
    reopened = EmbeddedVectorStore(tmp_path, dim=8)
    assert await ids({"year": {"gte": 2590}}, reopened) == {f"c{i}" for i in range(590, 597)}
    assert await ids({"year": {"lt": 2000}}, reopened) == {"c599"}
    await reopened.close()


@pytest.mark.parametrize(
    ("filters", "limit"),
    [
        ({f"f{i}": 1 for i in range(MAX_FILTER_FIELDS + 1)}, "fields"),
        ({"tag": {"in": list(range(MAX_FILTER_IN_VALUES + 1))}}, "values in 'in'"),
        ({"tag": list(range(MAX_FILTER_IN_VALUES + 1))}, "values in 'in'"),
        ({"tag": "x" * (MAX_FILTER_VALUE_CHARS + 1)}, "characters"),
        ({"tag": {"in": ["ok", "x" * (MAX_FILTER_VALUE_CHARS + 1)]}}, "characters"),
        ({"x" * (MAX_FILTER_VALUE_CHARS + 1): 1}, "characters"),
    ],
)
def test_filters_beyond_the_complexity_limits_are_422_naming_the_limit(
    filters: dict[str, Any], limit: str
) -> None:
    with pytest.raises(Unprocessable, match=limit) as caught:
        parse_filters(filters)
    assert caught.value.status_code == 422 and caught.value.code == "filter_too_complex"
    assert caught.value.details["limit"] in (MAX_FILTER_FIELDS, MAX_FILTER_IN_VALUES, MAX_FILTER_VALUE_CHARS)


def test_filters_at_the_limits_are_accepted() -> None:
    at_limits = {f"f{i}": "x" * MAX_FILTER_VALUE_CHARS for i in range(MAX_FILTER_FIELDS - 1)}
    at_limits["tag"] = {"in": list(range(MAX_FILTER_IN_VALUES))}  # type: ignore[assignment]
    assert parse_filters(at_limits) is not None
    with pytest.raises(BadRequest, match="invalid filters"):  # still a plain 400 for a bad filter
        parse_filters({"tag": {"like": 1}})
