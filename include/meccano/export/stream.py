"""Rows as they stream off the database: blocks of CSV lines of one day each with their per-second
counts, the day's counts and the purge chunks cut from them, and the threads that keep the rows moving
(a read-ahead of the server's rows; the export's CPU work below the database's priority).

Each row's time key is either the tail of its own CSV line (``'YYYY-MM-DD HH:MM:SS'``, when the date
column is the table's last and a whole-second ``TIMESTAMP``/``DATETIME``: counted in C, only the few
hundred distinct seconds of a batch decoded in Python) or the server's ``TO_SECONDS`` of the date.
The reader that produces the rows is :mod:`meccano.export.snapshot`.

Per-second counts: a full export counts the rows it streams into a fixed array per day (one counter per
second of the day) whatever the number of rows; no separate ``GROUP BY`` query reads the date index
again, and the counts are by construction those of the exported rows. Purge chunks are contiguous
``[from, to)`` ranges of whole seconds, so the purge can later check that the database still holds
exactly the exported rows of each range before deleting it.

Priority: when the IOTDB shares a host with the worker (the original ServiceManager ran next to MySQL;
so do the benchmark and small installations), the export's reading and compression compete for the
same cores as the database thread that serves it and the gateway's inserts. Lowered to nice 10, they
take what the server leaves: the server's thread, the slowest stage of the pipeline, keeps a whole
core, and the gateway keeps its latency. On a separate host this changes nothing. Linux gives each
thread its own nice value; elsewhere the work simply runs at the process's priority.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby
from typing import Any, NamedTuple, TypeVar, cast

from meccano.errors import AmbiguousValue
from meccano.export.model import SECONDS_PER_DAY, Chunk, Column

READ_AHEAD = 4  # batches fetched ahead of the formatting (about 0.6 MB each)
EXPORT_NICE = 10
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


def counts_per_chunk(histogram: Iterable[tuple[str, int]], chunks: list[Chunk]) -> list[int]:
    """Rows of ``(timestamp text, rows)`` falling in each ``[start, end)`` chunk (contiguous, ascending):
    one binary search per second instead of a scan of the day per chunk."""
    starts = [ch.start for ch in chunks]
    counts = [0] * len(chunks)
    for ts, n in histogram:
        i = bisect_right(starts, ts) - 1
        if i >= 0 and ts < chunks[i].end:
            counts[i] += n
    return counts


@dataclass
class DaySeconds:
    """The rows of one day counted per second of the day, and the first and last second."""

    day: str  # YYYY-MM-DD
    counts: array[int] = field(default_factory=lambda: array("q", bytes(8 * SECONDS_PER_DAY)))
    rows: int = 0
    low: int | None = None  # second of the day of the first and last row
    high: int | None = None

    def add(self, seconds: Mapping[int, int]) -> None:
        """Count rows given as second of the day -> rows."""
        counts = self.counts
        for second, n in seconds.items():
            counts[second] += n
            self.rows += n
        low, high = min(seconds), max(seconds)
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def _text(self, second: int) -> str:
        return f"{self.day} {second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}"

    @property
    def first(self) -> str | None:
        return self._text(self.low) if self.low is not None else None

    @property
    def last(self) -> str | None:
        return self._text(self.high) if self.high is not None else None

    def chunks(self, start: str, end: str, chunk_rows: int) -> list[Chunk]:
        """Contiguous ranges over ``[start, end)`` of at most ``chunk_rows`` rows (one second is never split),
        formatting only the chunk boundaries (formatting every busy second of a large day cost measurably)."""
        chunks: list[Chunk] = []
        lower, acc = start, 0
        for second, n in enumerate(self.counts):
            if n:
                if acc and acc + n > chunk_rows:
                    boundary = self._text(second)
                    chunks.append(Chunk(lower, boundary, acc))
                    lower, acc = boundary, 0
                acc += n
        chunks.append(Chunk(lower, end, acc))
        return chunks


def lower_this_thread(steps: int = EXPORT_NICE) -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):
        pass


def run_lowered(work: Callable[[], T], name: str) -> T:
    """``work()`` on a daemon thread at lower priority; its result or its exception, here.

    A daemon thread, so that a task killed while waiting here is not held up at exit by the
    rest of the read.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        lower_this_thread()
        try:
            box["value"] = work()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])
