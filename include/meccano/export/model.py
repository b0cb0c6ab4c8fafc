"""The export's vocabulary: the records the chain hands from room to room (a table-day, its purge
chunks, part files, the manifest of a day, a table's columns) and the enums of its modes and formats.

They travel as these typed records inside a task; across tasks they travel as JSON (XCom for
table-days, the ``ExportLedger`` row and the target's ``manifest.json`` for manifests), through
``to_json``/``from_json`` here, so the JSON field names and values stay those already written.
A *table-day* (:class:`TableDay`) is one calendar day of one table; a MySQL *partition* is
something else (``meccano.iotdb.partitions``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SECONDS_PER_DAY = 86_400
MANIFEST_NAME = "manifest.json"  # next to a day's parts in the target
Range = tuple[str, str]  # [from, to) as 'YYYY-MM-DD HH:MM:SS' texts


class FileFormat(StrEnum):
    """``export.format``: how part files are written (:mod:`meccano.export.formats` holds each one's rules)."""

    CSV = "csv"
    PARQUET = "parquet"


FORMATS = tuple(f.value for f in FileFormat)  # the export.format values accepted by the options


class Mode(StrEnum):
    """How a planned table-day is exported."""

    FULL = "full"  # nothing of the day purged yet: every row, in one snapshot
    RECONCILE = "reconcile"  # part of the day is only in the target: only the rows it lacks


@dataclass(frozen=True)
class Column:
    """A table's column as the export needs it."""

    name: str
    kind: str  # "string", "number" or "datetime"
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class TableDay:
    """One calendar day of one table, as planned."""

    table: str
    date_column: str
    prefix: str
    day: str  # YYYY-MM-DD
    start: str  # inclusive, 'YYYY-MM-DD 00:00:00'
    end: str  # exclusive
    mode: Mode

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))  # from JSON or a caller's text: always the enum

    @property
    def label(self) -> str:
        return f"{self.table} {self.day}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableDay:
        return cls(**{**data, "mode": Mode(data["mode"])})


@dataclass
class Chunk:
    """A ``[start, end)`` range of a day holding ``rows`` exported rows; the unit of the purge."""

    start: str
    end: str
    rows: int
    purged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "rows": self.rows, "purged": self.purged}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chunk:
        return cls(data["from"], data["to"], int(data["rows"]), bool(data["purged"]))


@dataclass(frozen=True)
class Part:
    """One part file: its name in the day's folder, its rows, and the size and hash of its bytes."""

    key: str
    rows: int
    bytes: int
    sha256: str
    uncompressed_bytes: int | None = None  # CSV bytes given to the part (absent in the oldest manifests)
    # S3's own checksum of the stored object, as S3 answered the upload (``sha256:<base64>``, ``-N`` for a
    # multipart upload of N chunks); None where the store keeps none (verify then reads the part back)
    checksum: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}
        if self.uncompressed_bytes is not None:
            out["uncompressedBytes"] = self.uncompressed_bytes
        if self.checksum is not None:
            out["checksum"] = self.checksum
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        raw = data.get("uncompressedBytes")
        return cls(data["key"], int(data["rows"]), int(data["bytes"]), data["sha256"],
                   None if raw is None else int(raw), data.get("checksum"))


_LAYOUT_KEYS = ("format", "compression", "header", "delimiter", "quote")


@dataclass
class Manifest:
    """What a day's export holds. ``chunks`` (the purge's bookkeeping) stay in the ledger; the rest is
    the ``manifest.json`` uploaded after the parts it lists."""

    table: str
    day: str
    date_column: str
    prefix: str
    run_id: str
    layout: dict[str, Any]  # file format and its options, e.g. {"format": "csv", "compression": "gzip", ...}
    schema: list[dict[str, str]]
    parts: list[Part]
    chunks: list[Chunk]
    min_date: str | None = None
    max_date: str | None = None
    written_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    # A partition drop in progress (:mod:`meccano.export.purge`): {"partition", "holding", "rows"}.
    # Ledger only, never uploaded; absent when no drop is under way.
    drop: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.parts)

    @property
    def file_format(self) -> FileFormat:
        """The format of the day's parts (the oldest manifests name none: they are CSV)."""
        return FileFormat(self.layout.get("format", FileFormat.CSV))

    @property
    def keys(self) -> set[str]:
        """Object names the day's folder holds: the parts and the manifest."""
        return {p.key for p in self.parts} | {MANIFEST_NAME}

    def public_json(self) -> dict[str, Any]:
        """``manifest.json`` as uploaded next to the parts."""
        return {"table": self.table, "day": self.day, "dateColumn": self.date_column, "prefix": self.prefix,
                "runId": self.run_id, "writtenAt": self.written_at, **self.layout, "schema": self.schema,
                "rows": self.rows, "bytes": self.bytes, "minDate": self.min_date, "maxDate": self.max_date,
                "parts": [p.to_json() for p in self.parts]}

    def to_json(self) -> dict[str, Any]:
        """The ledger's copy: the public manifest plus the purge chunks."""
        out = {**self.public_json(), "chunks": [c.to_json() for c in self.chunks]}
        if self.drop is not None:
            out["drop"] = self.drop
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(table=data["table"], day=data["day"], date_column=data["dateColumn"], prefix=data["prefix"],
                   run_id=data["runId"], layout={k: data[k] for k in _LAYOUT_KEYS if k in data},
                   schema=list(data.get("schema", [])), parts=[Part.from_json(p) for p in data.get("parts", [])],
                   chunks=[Chunk.from_json(c) for c in data.get("chunks", [])], min_date=data.get("minDate"),
                   max_date=data.get("maxDate"), written_at=data.get("writtenAt", ""), drop=data.get("drop"))
