"""The table's columns as the export needs them: name, kind, type, nullability; and its date index."""

from __future__ import annotations

from dataclasses import dataclass

from meccano.errors import ExportError, MissingTable
from meccano.iotdb.db import Iotdb


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string", "number" or "datetime"
    type: str
    nullable: bool = True


def _kind(type_name: str) -> str:
    upper = type_name.upper()
    if any(k in upper for k in ("CHAR", "TEXT", "ENUM", "JSON", "CLOB")):
        return "string"
    if any(k in upper for k in ("DATE", "TIME")):
        return "datetime"
    return "number"


def table_columns(db: Iotdb, table: str) -> list[Column]:
    from sqlalchemy import inspect

    insp = inspect(db.engine)
    if table not in insp.get_table_names():
        raise MissingTable(f"table {table!r} does not exist in the IOTDB; fix config.yml export.tables "
                          "or run `python -m meccano db upgrade`")
    return [Column(c["name"], _kind(str(c["type"])), str(c["type"]), bool(c.get("nullable", True)))
            for c in insp.get_columns(table)]


def date_index(db: Iotdb, table: str, column: str) -> str | None:
    """An index whose first column is ``column`` (the export's range scans use it), or None."""
    from sqlalchemy import inspect

    for index in inspect(db.engine).get_indexes(table):
        if index["column_names"] and index["column_names"][0] == column:
            return str(index["name"])
    return None



def checked_columns(db: Iotdb, table: str, date_column: str) -> list[Column]:
    """The table's columns; a clear error when the configured date column is not one of them."""
    columns = table_columns(db, table)
    if date_column not in {c.name for c in columns}:
        raise ExportError(f"{table} has no column {date_column!r}; fix config.yml export.tables dateColumn")
    return columns
