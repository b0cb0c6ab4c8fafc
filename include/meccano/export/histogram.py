"""Rows per second of a day partition, and the purge chunks cut from them.

A full export counts the rows it streams, second by second, into a fixed array per day
(86,400 counters, 690 KB) whatever the number of rows; no separate ``GROUP BY`` query reads
the date index again, and the counts are by construction those of the exported rows. Purge
chunks are contiguous ``[from, to)`` ranges of whole seconds, so the purge can later check
that the database still holds exactly the exported rows of each range before deleting it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from meccano.export.model import SECONDS_PER_DAY, Chunk


def build_chunks(histogram: Iterable[tuple[str, int]], start: str, end: str, chunk_rows: int) -> list[Chunk]:
    """Contiguous ranges over ``[start, end)`` of at most ``chunk_rows`` rows (one second is never split)."""
    chunks: list[Chunk] = []
    lower, acc = start, 0
    for ts, n in histogram:
        if acc and acc + n > chunk_rows:
            chunks.append(Chunk(lower, ts, acc))
            lower, acc = ts, 0
        acc += n
    chunks.append(Chunk(lower, end, acc))
    return chunks


def counts_per_chunk(histogram: Iterable[tuple[str, int]], chunks: list[Chunk]) -> list[int]:
    """Rows of ``(timestamp text, rows)`` falling in each ``[start, end)`` chunk (contiguous, ascending):
    one binary search per second instead of a scan of the day per chunk (0.5 s per day of 50 chunks)."""
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

    def histogram(self) -> Iterator[tuple[str, int]]:
        """``('YYYY-MM-DD HH:MM:SS', rows)`` of each second holding rows, ascending."""
        for second, n in enumerate(self.counts):
            if n:
                yield self._text(second), n

    def chunks(self, start: str, end: str, chunk_rows: int) -> list[Chunk]:
        """:func:`build_chunks` of :meth:`histogram`, formatting only the chunk boundaries (a day of
        1 M rows has ~86,400 busy seconds: formatting each one cost 0.3 s per day exported)."""
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
