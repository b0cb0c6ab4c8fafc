"""Chart helpers for report plugins: readable at a glance, the same look everywhere.

Every chart has a title, axis labels with units and a subtitle saying the window it
covers. Bars are sorted; past ``top_n`` categories the rest are folded into one grey
"others" bar, so a fleet of thousands stays readable. With nothing to show, an explicit
"no data in the window" image is written instead of an error or an empty file.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot global state), so
these helpers are safe in any worker process.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

WIDTH_IN = 10.0
DPI = 100
BAR_COLOR = "#2f6f9f"
OTHERS_COLOR = "#a0a0a0"
STATUS_COLORS = {"NORMAL": "#2e8b57", "WARNING": "#e0a100", "FAIL": "#c0392b", "WAITING_APPROVE": "#7f8c8d"}
DEFAULT_TOP_N = 25


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    others: int = 0  # how many categories an "others" bar stands for (0: a real category)


def fold_top_n(values: Mapping[str, float], top_n: int = DEFAULT_TOP_N, others: str = "sum",
               noun: str = "devices") -> list[Bar]:
    """Sort descending; keep ``top_n``, fold the rest into one bar (``sum`` or ``mean``).

    Ties are broken by label so the chart is stable from run to run.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be 1 or more, got {top_n}")
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    bars = [Bar(k, float(v)) for k, v in ordered[:top_n]]
    rest = [float(v) for _, v in ordered[top_n:]]
    if rest:
        value = sum(rest) if others == "sum" else sum(rest) / len(rest)
        how = "total" if others == "sum" else "mean"
        bars.append(Bar(f"others ({len(rest)} {noun}, {how})", value, len(rest)))
    return bars


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value):,}"
    return f"{value:,.1f}"


def bar_chart(path: Path, bars: Sequence[Bar], *, title: str, value_label: str, category_label: str,
              subtitle: str = "") -> Path:
    """Horizontal bars, largest on top, each with its value printed at its end."""
    height = max(3.0, 1.3 + 0.32 * len(bars))
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    ax = fig.add_subplot()
    labels = [b.label for b in reversed(bars)]
    values = [b.value for b in reversed(bars)]
    colors = [OTHERS_COLOR if b.others else BAR_COLOR for b in reversed(bars)]
    rects = ax.barh(labels, values, color=colors)
    ax.bar_label(rects, labels=[_fmt(v) for v in values], padding=3, fontsize=8)
    ax.set_xlabel(value_label)
    ax.set_ylabel(category_label)
    ax.margins(x=0.12)
    return _finish_bars(fig, ax, path, title, subtitle)


def no_data_image(path: Path, *, title: str, message: str = "No data in the window") -> Path:
    """An explicit, readable "nothing to show" chart (never an error or an empty file)."""
    fig = Figure(figsize=(WIDTH_IN, 3.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    fig.suptitle(title, fontsize=13, fontweight="bold")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=15, color="#555555", wrap=True,
            transform=ax.transAxes)
    return _save(fig, path)


def status_history_chart(path: Path, series: Mapping[str, Sequence[tuple[datetime, float]]], *, title: str,
                         subtitle: str = "") -> Path:
    """Devices per status over time: one line per status, in the status' usual colour."""
    fig = Figure(figsize=(WIDTH_IN, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for status, points in series.items():
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, label=status, color=STATUS_COLORS.get(status), linewidth=1.8,
                marker="o" if len(points) < 40 else None, markersize=3)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("devices (count)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=4)
    fig.autofmt_xdate()
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if subtitle:
        ax.set_title(subtitle, fontsize=9, color="#555555")
    return _save(fig, path)


def error_bar_chart(path: Path, rows: Sequence[tuple[str, float, float]], *, title: str, value_label: str,
                    category_label: str, subtitle: str = "") -> Path:
    """Horizontal bars of a mean with ± one deviation as whiskers (rows: label, mean, deviation)."""
    height = max(3.0, 1.3 + 0.32 * len(rows))
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    ax = fig.add_subplot()
    ordered = list(reversed(rows))
    ax.barh([r[0] for r in ordered], [r[1] for r in ordered], xerr=[r[2] for r in ordered], color=BAR_COLOR,
            ecolor="#333333", capsize=3)
    ax.set_xlabel(value_label)
    ax.set_ylabel(category_label)
    return _finish_bars(fig, ax, path, title, subtitle)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """The numbers behind a chart, every row (not just the top N shown)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def window_text(start: datetime, end: datetime) -> str:
    return f"window {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


def _finish_bars(fig: Any, ax: Any, path: Path, title: str, subtitle: str | None) -> Path:
    """The common finish of the horizontal bar charts: grid, title, subtitle, saved PNG."""
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if subtitle:
        ax.set_title(subtitle, fontsize=9, color="#555555")
    return _save(fig, path)
