"""An index of one collection's chunk metadata, so that a filter costs index lookups, not a pass
over every chunk (a Python `matches()` per chunk took ~2 s per new filter at 100k chunks).

Per metadata field it keeps:
- value → labels, for ``eq`` and ``in``; keys carry the value's kind, because ``True == 1`` in
  Python and a filter on a boolean must not match a number (nor the reverse), while ``1 == 1.0``;
  lists and objects, which no scalar equals, apart (a condition with no operator left, such as
  ``{"eq": null}``, matches any non-null value — the linear matcher's rule);
- numbers and ISO dates (as integer microseconds since the epoch) in sorted arrays, for ranges:
  a range is two binary searches. New values wait in a small pending list and removed ones in a
  stale set until the next `compact()`, so a write never re-sorts a column of 100k values.

A filter's result is the same boolean mask by label that `MetadataFilter.matches` gives chunk by
chunk (tests/store/test_metadata_index.py compares both on random data). Callers serialise
writes against reads (`CollectionIndex`'s readers-writer lock); reads only fill caches, which is
safe from many threads (the same array may be built twice).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ragfleet.retrieval.store.base import FieldCondition, MetadataFilter, parse_iso_date

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# A column re-sorts once this many values are pending or stale: a query scans the pending ones
# in Python, so keep them few; a merge at 100k values costs a few ms of numpy.
COMPACT_AFTER = 256

_BOOL, _NUMBER, _STRING = 0, 1, 2


def _equality_key(value: Any) -> tuple[int, Any] | None:
    """The value's key in the equality index; None for values no scalar can equal (lists, objects)."""
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int | float):
        return (_NUMBER, value)
    if isinstance(value, str):
        return (_STRING, value)
    return None


def _micros(moment: datetime) -> int:
    """An aware datetime as an exact integer (float seconds lose microseconds far from 1970)."""
    return (moment - _EPOCH) // _MICROSECOND


def _date_micros(value: str) -> int | None:
    try:
        return _micros(parse_iso_date(value))
    except ValueError:
        return None


def _exact_float(value: int | float) -> float | None:
    """The value as a float64 when that loses nothing (every JSON float; ints up to 2**53 and more)."""
    if isinstance(value, float):
        return value
    try:
        converted = float(value)
    except OverflowError:
        return None
    return converted if int(converted) == value else None


class _Labels:
    """A set of labels and, built on first use after a change, the same as an int64 array."""

    __slots__ = ("_array", "labels")

    def __init__(self) -> None:
        self.labels: set[int] = set()
        self._array: np.ndarray | None = None

    def add(self, label: int) -> None:
        self.labels.add(label)
        self._array = None

    def discard(self, label: int) -> None:
        self.labels.discard(label)
        self._array = None

    def array(self) -> np.ndarray:
        array = self._array
        if array is None:
            array = np.fromiter(self.labels, dtype=np.int64, count=len(self.labels))
            self._array = array
        return array


class _SortedColumn:
    """(value, label) pairs sorted by value, plus the writes since the last merge."""

    __slots__ = ("_dtype", "_labels", "_pending", "_stale", "_values")

    def __init__(self, dtype: type) -> None:
        self._dtype = dtype
        self._values: np.ndarray = np.empty(0, dtype=dtype)
        self._labels = np.empty(0, dtype=np.int64)
        self._pending: dict[int, Any] = {}  # label → value, added since the last merge
        self._stale: set[int] = set()  # labels whose sorted entry no longer holds

    def add(self, label: int, value: Any) -> None:
        """The label must hold no value in this column (callers remove the old one first)."""
        self._pending[label] = value

    def remove(self, label: int) -> None:
        if self._pending.pop(label, None) is None:
            self._stale.add(label)
        # A label both pending and merged (removed, re-added, removed) was already marked stale.

    @property
    def size(self) -> int:
        return len(self._labels) - len(self._stale) + len(self._pending)

    def compact(self, *, force: bool = False) -> None:
        if not (force or len(self._pending) + len(self._stale) > COMPACT_AFTER):
            return
        if not self._pending and not self._stale:
            return
        labels, values = self._labels, self._values
        if self._stale:
            keep = ~np.isin(labels, np.fromiter(self._stale, dtype=np.int64, count=len(self._stale)))
            labels, values = labels[keep], values[keep]
        if self._pending:
            labels = np.concatenate(
                [labels, np.fromiter(self._pending, dtype=np.int64, count=len(self._pending))]
            )
            values = np.concatenate(
                [values, np.fromiter(self._pending.values(), dtype=self._dtype, count=len(self._pending))]
            )
        order = np.argsort(values, kind="stable")
        self._labels, self._values = labels[order], values[order]
        self._pending, self._stale = {}, set()

    def select(self, mask: np.ndarray, low: Any, low_open: bool, high: Any, high_open: bool) -> None:
        """Set ``mask`` at the labels whose value lies between the bounds (None: unbounded)."""
        start = 0 if low is None else int(np.searchsorted(self._values, low, "right" if low_open else "left"))
        end = (
            len(self._values)
            if high is None
            else int(np.searchsorted(self._values, high, "left" if high_open else "right"))
        )
        if start < end:
            mask[self._labels[start:end]] = True
        if self._stale:
            mask[np.fromiter(self._stale, dtype=np.int64, count=len(self._stale))] = False
        for label, value in self._pending.items():
            if _between(value, low, low_open, high, high_open):
                mask[label] = True


def _between(value: Any, low: Any, low_open: bool, high: Any, high_open: bool) -> bool:
    if low is not None and not (value > low if low_open else value >= low):
        return False
    return high is None or (value < high if high_open else value <= high)


def _tightest(bounds: Iterable[tuple[Any, bool]], *, lower: bool) -> tuple[Any, bool]:
    """Of several bounds on one side (say gt 3 and gte 5), the one that binds: (value, open)."""
    chosen: tuple[Any, bool] = (None, False)
    for value, is_open in bounds:
        if chosen[0] is None or (value > chosen[0] if lower else value < chosen[0]):
            chosen = (value, is_open)
        elif value == chosen[0]:
            chosen = (value, chosen[1] or is_open)
    return chosen


class _FieldIndex:
    __slots__ = ("big_ints", "count", "dates", "equal", "numbers", "other")

    def __init__(self) -> None:
        self.count = 0  # labels holding a non-null value
        self.equal: dict[tuple[int, Any], _Labels] = {}
        self.other = _Labels()  # labels holding a list or an object
        self.numbers = _SortedColumn(np.float64)
        # Ints a float64 cannot hold exactly compare exactly in Python; kept aside (JSON metadata
        # rarely has any) and compared one by one.
        self.big_ints: dict[int, int] = {}
        self.dates = _SortedColumn(np.int64)

    def add(self, label: int, value: Any) -> None:
        self.count += 1
        key = _equality_key(value)
        if key is None:
            self.other.add(label)
        else:
            labels = self.equal.get(key)
            if labels is None:
                labels = self.equal[key] = _Labels()
            labels.add(label)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = _exact_float(value)
            if number is None:
                self.big_ints[label] = int(value)
            else:
                self.numbers.add(label, number)
        elif isinstance(value, str) and (micros := _date_micros(value)) is not None:
            self.dates.add(label, micros)

    def remove(self, label: int, value: Any) -> None:
        self.count -= 1
        key = _equality_key(value)
        if key is None:
            self.other.discard(label)
        elif (labels := self.equal.get(key)) is not None:
            labels.discard(label)
            if not labels.labels:
                del self.equal[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.big_ints.pop(label, None) is None:
                self.numbers.remove(label)
        elif isinstance(value, str) and _date_micros(value) is not None:
            self.dates.remove(label)

    def compact(self, *, force: bool = False) -> None:
        self.numbers.compact(force=force)
        self.dates.compact(force=force)

    @property
    def empty(self) -> bool:
        return self.count == 0

    # --- one condition ------------------------------------------------------------------------

    def condition_mask(self, condition: FieldCondition, size: int) -> np.ndarray:
        mask: np.ndarray | None = None
        if condition.eq is not None:
            mask = self._equal_mask([condition.eq], size)
        if condition.in_ is not None:
            found = self._equal_mask(condition.in_, size)
            mask = found if mask is None else mask & found
        if condition.is_range:
            found = self._range_mask(condition, size)
            mask = found if mask is None else mask & found
        if mask is None:  # no operator left (e.g. {"eq": null}): any non-null value matches
            mask = np.zeros(size, dtype=bool)
            for labels in (*self.equal.values(), self.other):
                mask[labels.array()] = True
        return mask

    def _equal_mask(self, options: Iterable[Any], size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        for option in options:
            key = _equality_key(option)
            labels = self.equal.get(key) if key is not None else None
            if labels is not None:
                mask[labels.array()] = True
        return mask

    def _range_mask(self, condition: FieldCondition, size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        if condition.is_date_range:
            convert: Any = lambda bound: _micros(parse_iso_date(bound))  # noqa: E731
        else:
            convert = float
        lows = [
            (convert(b), is_open)
            for b, is_open in ((condition.gt, True), (condition.gte, False))
            if b is not None
        ]
        highs = [
            (convert(b), is_open)
            for b, is_open in ((condition.lt, True), (condition.lte, False))
            if b is not None
        ]
        if any(isinstance(b, float) and math.isnan(b) for b, _ in lows + highs):
            return mask  # nothing compares true with NaN
        low, low_open = _tightest(lows, lower=True)
        high, high_open = _tightest(highs, lower=False)
        if condition.is_date_range:
            self.dates.select(mask, low, low_open, high, high_open)
        else:
            self.numbers.select(mask, low, low_open, high, high_open)
            for label, value in self.big_ints.items():
                if _between(value, low, low_open, high, high_open):
                    mask[label] = True
        return mask


class MetadataIndex:
    """Every metadata field of one collection's live chunks, indexed for `MetadataFilter`."""

    def __init__(self) -> None:
        self._fields: dict[str, _FieldIndex] = {}
        self._touched: set[str] = set()  # fields written since the last compact()

    def add(self, label: int, metadata: Mapping[str, Any]) -> None:
        for name, value in metadata.items():
            if value is None:  # a null never matches: as if the field were absent
                continue
            field = self._fields.get(name)
            if field is None:
                field = self._fields[name] = _FieldIndex()
            field.add(label, value)
            self._touched.add(name)

    def remove(self, label: int, metadata: Mapping[str, Any]) -> None:
        """Forget a label; ``metadata`` must be what was added for it."""
        for name, value in metadata.items():
            field = self._fields.get(name)
            if value is None or field is None:
                continue
            field.remove(label, value)
            if field.empty:
                del self._fields[name]
                self._touched.discard(name)
            else:
                self._touched.add(name)

    def compact(self, *, force: bool = False) -> None:
        """Merge pending writes into the sorted columns where enough have gathered (after a write)."""
        for name in self._touched:
            self._fields[name].compact(force=force)
        self._touched.clear()

    def mask(self, metadata_filter: MetadataFilter, size: int) -> np.ndarray:
        """A boolean mask over labels ``[0, size)``: the chunks matching every condition."""
        mask: np.ndarray | None = None
        for name, condition in metadata_filter.root.items():
            field = self._fields.get(name)
            if field is None:  # no chunk has the field: nothing matches
                return np.zeros(size, dtype=bool)
            found = field.condition_mask(condition, size)
            mask = found if mask is None else mask & found
            if not mask.any():
                break
        return mask if mask is not None else np.zeros(size, dtype=bool)
