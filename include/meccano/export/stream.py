"""Rows as they stream off the database: blocks of CSV lines of one day each, with their per-second
counts, and a read-ahead thread that keeps the server's rows coming while the last ones are formatted.

Each row's time key is either the tail of its own CSV line (``'YYYY-MM-DD HH:MM:SS'``, when the date
column is the table's last and a whole-second ``TIMESTAMP``/``DATETIME``: counted in C, only the few
hundred distinct seconds of a batch decoded in Python) or the server's ``TO_SECONDS`` of the date.
The reader that produces the rows is :mod:`meccano.export.snapshot`.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import date, datetime
from itertools import groupby
from typing import Any, NamedTuple, TypeVar

from meccano.errors import AmbiguousValue
from meccano.export.model import SECONDS_PER_DAY
from meccano.export.schema import Column

READ_AHEAD = 4  # batches fetched ahead of the formatting (about 0.6 MB each)
T = TypeVar("T")


class Block(NamedTuple):
    """Rows of one day as read: their CSV lines and how many fell in each second."""

    day: str  # 'YYYY-MM-DD'
    data: bytes  # UTF-8 CSV lines, each ending in a newline
    rows: int
    seconds: Counter[int]  # second of the day (0..86,399) -> rows


_ORDINAL_OFFSET = 365  # MySQL's TO_DAYS(d) == Python's d.toordinal() + 365


def to_seconds(value: Any) -> int:
    """MySQL's ``TO_SECONDS`` of a date value (a datetime or its text): whole seconds since year 0."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value)[:19])
    return ((moment.toordinal() + _ORDINAL_OFFSET) * SECONDS_PER_DAY + moment.hour * 3600 + moment.minute * 60
            + moment.second)


def day_text(day_number: int) -> str:
    """``'YYYY-MM-DD'`` of ``TO_SECONDS // 86400`` (MySQL's ``TO_DAYS``)."""
    return date.fromordinal(day_number - _ORDINAL_OFFSET).isoformat()


TimeKey = Callable[[Any], Any]  # a batch item -> its raw time key (C-level, e.g. an itemgetter)
DecodeKey = Callable[[Any], tuple[str, int]]  # a raw time key -> (day 'YYYY-MM-DD', second of the day)

_TEXT_KEY = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
TEXT_KEY_WIDTH = 19  # 'YYYY-MM-DD HH:MM:SS'
_ZERO = ord("0")


def decode_text_key(key: bytes) -> tuple[str, int]:
    """``(day, second of the day)`` of a ``b'YYYY-MM-DD HH:MM:SS'`` line tail.

    Raises :class:`AmbiguousValue` when the tail is not such a date (the caller then reads the
    rows the exact way, with the server's ``TO_SECONDS``)."""
    if not _TEXT_KEY.fullmatch(key):
        raise AmbiguousValue(f"a line does not end in its date ({key!r})")
    hours, minutes, seconds = (key[i] * 10 + key[i + 1] - 11 * _ZERO for i in (11, 14, 17))  # digit pairs
    return key[:10].decode("ascii"), hours * 3600 + minutes * 60 + seconds


def decode_seconds_key(key: Any) -> tuple[str, int]:
    """``(day, second of the day)`` of a ``TO_SECONDS`` value (int, or its digits as bytes)."""
    days, second = divmod(int(key), SECONDS_PER_DAY)
    return day_text(days), second


def text_key_of(columns: Sequence[Column], column: str) -> bool:
    """True when each fast-path line ends in the row's date as ``'YYYY-MM-DD HH:MM:SS'``: ``column`` is
    the last column and a ``TIMESTAMP`` or ``DATETIME`` without fractional seconds."""
    last = columns[-1]
    return last.name == column and last.type.upper() in ("TIMESTAMP", "DATETIME")


def by_day(items: Sequence[Any], to_csv: Callable[[Sequence[Any]], bytes], key_of: TimeKey,
            decode: DecodeKey) -> Iterator[Block]:
    """Split a fetched batch into blocks of one day each (usually the whole batch).

    The per-second counts are taken here, in C (``Counter`` over ``key_of``), from the same items
    that are exported, so the histogram can never disagree with the files; only the distinct keys
    (a few hundred a batch) are decoded in Python.
    """
    raw = Counter(map(key_of, items))
    decoded = {key: decode(key) for key in raw}
    days = {day for day, _ in decoded.values()}
    if len(days) == 1:
        yield Block(days.pop(), to_csv(items), len(items), _per_second(raw, decoded))
        return
    for day, group in groupby(items, key=lambda item: decoded[key_of(item)][0]):
        part = list(group)
        yield Block(day, to_csv(part), len(part), _per_second(Counter(map(key_of, part)), decoded))


def _per_second(raw: Counter[Any], decoded: dict[Any, tuple[str, int]]) -> Counter[int]:
    seconds: Counter[int] = Counter()
    for key, n in raw.items():
        seconds[decoded[key][1]] += n
    return seconds


def read_ahead(batches: Iterator[T], depth: int = READ_AHEAD) -> Generator[T, None, None]:
    """``batches``, produced by a helper thread up to ``depth`` ahead of the consumer.

    The server's next rows come off the socket while the caller formats the last ones (MySQLdb
    releases the GIL while it waits for a row): without it the server stalled whenever the reader
    was busy formatting. Errors of the source reach the consumer; a consumer that stops early
    stops the source and waits until its clean-up (``finally``) has run, so the connection is
    free again when this generator is closed.
    """
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                if stop.is_set():
                    break
                slots.put((True, item))
            slots.put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put((False, exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: S110 - the consumer already has the error that ended the read, or none
                    pass

    worker = threading.Thread(target=produce, name="meccano-export-fetch", daemon=True)
    worker.start()
    try:
        while True:
            more, item = slots.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # keep taking so that a blocked put() sees the stop
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
