"""Progress lines in the task log: rows so far, rate, estimated time left."""

from __future__ import annotations

import logging
import time


class Progress:
    def __init__(self, log: logging.Logger, label: str, total: int | None, every_seconds: float = 5.0,
                 estimated: bool = False) -> None:
        self.about = "~" if estimated else ""
        self.log, self.label, self.total, self.every = log, label, total, every_seconds
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        rate = self.done / elapsed
        if not self.total:  # unknown (or estimated as none): no share, no ETA
            return f"{self.label}: {self.done:,} rows, {rate:,.0f} rows/s, {elapsed:,.1f}s elapsed"
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:,.0f}s" if rate > 0 else "?"
        pct = f" ({min(100, 100 * self.done / self.total):.0f}%)"
        return (f"{self.label}: {self.done:,}/{self.about}{self.total:,} rows{pct}, {rate:,.0f} rows/s, "
                f"{elapsed:,.1f}s elapsed, ETA {eta}")

    def finish(self) -> str:
        line = self.line()
        self.log.info("%s (done)", line)
        return line
