"""The export's read path: the CSV dialect's fast and exact paths, several days in one pass,
both access paths, the compression thread. Real MariaDB where the server builds the rows."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from meccano.errors import AmbiguousValue, ConfigError, ExportError
from meccano.export import write
from meccano.export.csvformat import GS, RS, US, CsvParts, csv_block, csv_fields, format_row
from meccano.export.formats import PartWriter, batch_rows
from meccano.export.model import Chunk, Column, TableDay
from meccano.export.options import load_options
from meccano.export.snapshot import Snapshot, access_hint, date_index, merged, table_columns
from meccano.export.stream import decode_seconds_key, decode_text_key, read_ahead, text_key_of, to_seconds
from meccano.iotdb.partitions import day_bounds
from meccano.settings.config import load_settings
from tests.support.export import configure_export, fact, insert_facts, write_days_to

TRICKY = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "", "ü€ unicode", " spaced "]


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


# --- the dialect, without a database -------------------------------------------------------

def test_fast_path_is_one_replace_and_equals_the_exact_path():
    rows = [[f"dev{i}".encode(), str(i).encode(), b"2024-01-01 00:00:01"] for i in range(50)]
    lines = [US.join(r) for r in rows]
    fast = csv_block(lines, [False] * 3)
    assert fast == b"".join(b",".join(r) + b"\n" for r in rows)  # nothing quoted when nothing needs it
    assert fast == b"".join(csv_fields(r, [False] * 3) for r in rows)


@pytest.mark.parametrize("nullable", [False, True])
def test_every_tricky_value_round_trips_through_a_csv_reader(nullable):
    values = [v.encode() for v in TRICKY]
    if nullable:  # the server's markers of a nullable text column: NULL -> RS, '' -> GS
        lines = [US.join([RS if v == b"" and i == 0 else (GS if v == b"" else v), b"7"])
                 for i, v in enumerate([b"", *values])]
        expected = [["", "7"]] + [[v, "7"] for v in TRICKY]
    else:
        lines = [US.join([v, b"7"]) for v in values]
        expected = [[v, "7"] for v in TRICKY]
    data = csv_block(lines, [nullable, False])
    assert parse(data) == expected
    if nullable:  # NULL and the empty string stay apart
        assert data.startswith(b',7\n') and b'\n"",7\n' in data
    else:  # a NOT NULL column's empty string is an empty field
        assert b"\n,7\n" in data


def test_python_formatting_matches_the_server_path():
    kinds, nullable = ["string", "number", "datetime"], [True, True, False]
    for value in [*TRICKY, None]:
        row = [value, 3, datetime(2024, 1, 2, 3, 4, 5)]
        raw = [None if value is None else value.encode(), b"3", b"2024-01-02 03:04:05"]
        assert (format_row(row, kinds, nullable) + "\n").encode() == csv_fields(raw, nullable)


def test_a_value_holding_a_separator_is_reported_not_guessed():
    with pytest.raises(AmbiguousValue, match="unit separator"):
        csv_block([US.join([b"a" + US + b"b", b"1"])], [False, False])
    with pytest.raises(AmbiguousValue, match="record or group separator"):
        csv_block([US.join([b"x" + RS, b"1"])], [True, False])


def test_ranges_merge_and_seconds_convert():
    assert merged([("b", "c"), ("a", "b"), ("d", "e")]) == [("a", "c"), ("d", "e")]
    assert to_seconds("2024-01-01 00:00:00") == 63871286400  # MariaDB's TO_SECONDS
    assert decode_seconds_key(to_seconds(datetime(2024, 2, 29, 23, 59, 59))) == ("2024-02-29", 86_399)
    assert decode_seconds_key(str(to_seconds("2024-03-01 00:00:07")).encode()) == ("2024-03-01", 7)
    assert decode_text_key(b"2024-02-29 23:59:59") == ("2024-02-29", 86_399)
    assert decode_text_key(b"2024-03-01 00:01:07") == ("2024-03-01", 67)
    for bad in (b"2024-02-29T23:59:59", b"x024-02-29 23:59:59", b"24-02-29 23:59:59.5"):
        with pytest.raises(AmbiguousValue, match="does not end in its date"):
            decode_text_key(bad)


def test_read_ahead_yields_in_order_hands_over_errors_and_stops_its_source():
    import threading

    def source(n, fail_at=None, log=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise ConnectionError("server gone at batch 3")
                yield i
        finally:
            if log is not None:
                log.append(threading.current_thread().name)

    assert list(read_ahead(source(50), depth=2)) == list(range(50))
    got = []
    with pytest.raises(ConnectionError, match="server gone at batch 3"):
        for item in read_ahead(source(10, fail_at=3)):
            got.append(item)
    assert got == [0, 1, 2]
    closed: list[str] = []
    reader = read_ahead(source(1_000, log=closed), depth=2)
    assert [next(reader), next(reader)] == [0, 1]
    reader.close()  # the consumer stops early: the source is closed, in the reading thread, before close() returns
    assert closed == ["meccano-export-fetch"]
    assert not any(t.name == "meccano-export-fetch" for t in threading.enumerate())


def test_the_line_tail_is_the_time_key_only_for_a_last_whole_second_date_column():
    def cols(*spec: tuple[str, str]) -> list[Column]:
        return [Column(name, "datetime" if "TIME" in kind else "number", kind) for name, kind in spec]

    assert text_key_of(cols(("data", "INTEGER"), ("creationDate", "TIMESTAMP")), "creationDate")
    assert text_key_of(cols(("data", "INTEGER"), ("creationDate", "DATETIME")), "creationDate")
    assert not text_key_of(cols(("data", "INTEGER"), ("creationDate", "TIMESTAMP(3)")), "creationDate")
    assert not text_key_of(cols(("data", "INTEGER"), ("creationDate", "DATE")), "creationDate")
    assert not text_key_of(cols(("creationDate", "TIMESTAMP"), ("data", "INTEGER")), "creationDate")


def test_scan_groups_and_access_path_choice():
    def part(table, day, mode="full"):
        start, end = day_bounds(datetime.fromisoformat(day).date())
        return TableDay(table, "creationDate", table.lower(), day, start, end, mode)

    days = [part("Facts", f"2024-01-{d:02d}") for d in range(1, 11)]
    mixed = [*days[:2], part("Facts", "2024-01-03", "reconcile"), days[3], part("Other", "2024-01-01")]
    assert [len(g) for g in write.scan_groups(days)] == [write.SCAN_DAYS, 10 - write.SCAN_DAYS]
    assert [[p.day for p in g] for g in write.scan_groups(mixed)] == [
        ["2024-01-01", "2024-01-02"], ["2024-01-03"], ["2024-01-04"], ["2024-01-01"]]
    assert write.use_full_scan(600, 1000) and not write.use_full_scan(400, 1000)
    assert not write.use_full_scan(None, 1000) and not write.use_full_scan(10, None)


def test_part_files_are_reproducible_and_their_records_match(tmp_path):
    data = b"".join(b"dev%d,%d\n" % (i, i) for i in range(20000))
    records = []
    for name in ("a", "b"):
        writer = PartWriter(tmp_path / name, part_bytes=100_000, fmt=CsvParts([], 5))
        for start in range(0, len(data), 30_000):
            writer.write(data[start:start + 30_000], 1)
        records.append(writer.close())
    assert records[0] == records[1] and len(records[0]) > 1  # same rows, same bytes; bounded parts
    for rec in records[0]:
        blob = (tmp_path / "a" / rec.key).read_bytes()
        assert len(blob) == rec.bytes and hashlib.sha256(blob).hexdigest() == rec.sha256
    assert b"".join(gzip.decompress((tmp_path / "a" / r.key).read_bytes()) for r in records[0]) == data


def test_a_failing_compression_thread_stops_the_reader(tmp_path):
    writer = PartWriter(tmp_path, part_bytes=10, fmt=CsvParts([], 5))
    (tmp_path / "part-00001.csv.gz").mkdir()  # the second part cannot be opened
    with pytest.raises(ExportError, match="writing the export files failed"):
        for _ in range(1000):
            writer.write(b"x" * 20, 1)
        writer.close()
    writer.abort()


# --- against MariaDB -----------------------------------------------------------------------

def _export(db, table: str, days: list[str], tmp_path: Path, caplog) -> dict[str, list[list[str]]]:
    options = load_options(load_settings(), {})
    parts = [TableDay(table, "creationDate", table.lower(), d, *day_bounds(datetime.fromisoformat(d).date()),
                       "full") for d in days]
    with caplog.at_level(logging.INFO):
        manifests = write_days_to(db, parts, options, lambda p: tmp_path / p.day, "run-1",
                                     logging.getLogger("test"))
    out = {}
    for p, manifest in zip(parts, manifests, strict=True):
        data = b"".join(gzip.decompress((tmp_path / p.day / part.key).read_bytes()) for part in manifest.parts)
        out[p.day] = parse(data)
        assert manifest.rows == len(out[p.day]) == sum(c.rows for c in manifest.chunks)
    return out


def test_nulls_empty_strings_and_separators_in_values_export_exactly(iotdb, tmp_path, caplog):
    memos = [None, "", *TRICKY, "unit\x1fsep"]  # the last one forces the exact path
    for i, memo in enumerate(memos):
        iotdb.execute("INSERT INTO Registration (device, device_group, creationDate, memo) "
                      "VALUES (:d, :g, :c, :m)", d=f"dev{i}", g=None if i % 2 else "", m=memo,
                      c=datetime(2024, 1, 1, 0, 0, i))
    out = _export(iotdb, "Registration", ["2024-01-01"], tmp_path, caplog)
    assert "formatting every value in Python" in caplog.text  # the fallback was taken, and said so
    columns = [c.name for c in table_columns(iotdb, "Registration")]
    got = {row[columns.index("device")]: row for row in out["2024-01-01"]}
    raw = (tmp_path / "2024-01-01").glob("part-*.csv.gz")
    text = b"".join(gzip.decompress(p.read_bytes()) for p in raw)
    for i, memo in enumerate(memos):
        row = got[f"dev{i}"]
        assert row[columns.index("memo")] == (memo or "")
    assert b',"",' in text  # an empty memo (nullable) is quoted, a NULL one is not
    assert "unit\x1fsep" in {r[columns.index("memo")] for r in out["2024-01-01"]}


@pytest.mark.parametrize("memos", [["plain", "a,b"], [None, "", *TRICKY]], ids=["fast-path", "quoted-and-nulls"])
def test_parquet_parts_hold_the_typed_values_of_the_database(iotdb, tmp_path, monkeypatch, memos):
    """export.format: parquet: every value arrives typed (NULL vs empty string, quotes, commas, line ends,
    non-ASCII, timestamps) and the parts are recorded like gzip parts (size and sha256 of the file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    configure_export(tmp_path, monkeypatch, "parquet")
    memos = [*memos, "unit\x1fsep"]  # a separator byte: the exact path must type it the same way
    for i, memo in enumerate(memos):
        iotdb.execute("INSERT INTO Registration (device, device_group, registrationDate, creationDate, memo) "
                      "VALUES (:d, :g, NULL, :c, :m)", d=f"dev{i}", g=None if i % 2 else "", m=memo,
                      c=datetime(2024, 1, 1, 0, 0, i))
    options = load_options(load_settings(), {})
    assert options.file_format == "parquet"
    part = TableDay("Registration", "creationDate", "registration", "2024-01-01",
                     *day_bounds(datetime(2024, 1, 1).date()), "full")
    [manifest] = write_days_to(iotdb, [part], options, lambda p: tmp_path / "out", "run-1",
                                  logging.getLogger("test"))
    assert manifest.layout == {"format": "parquet", "compression": "zstd"}
    assert [p.key for p in manifest.parts] == ["part-00000.parquet"]
    data = (tmp_path / "out" / "part-00000.parquet").read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (manifest.parts[0].bytes, manifest.parts[0].sha256)
    table = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert table.schema.field("creationDate").type == pa.timestamp("us")
    assert table.schema.field("memo").nullable and not table.schema.field("device").nullable
    got = {r["device"]: r for r in table.to_pylist()}
    assert len(got) == manifest.rows == len(memos)
    for i, memo in enumerate(memos):
        row = got[f"dev{i}"]
        assert (row["memo"], row["device_group"], row["registrationDate"]) == (memo, None if i % 2 else "", None)
        assert row["creationDate"] == datetime(2024, 1, 1, 0, 0, i)


def test_parquet_days_of_one_pass_share_their_memory_bound_and_keep_their_rows(iotdb, tmp_path, monkeypatch):
    """Several days in one pass, rows out of physical order: each day's Parquet parts hold exactly its rows,
    and row groups end at the bound (plus at most one fetched block), even when the waiting rows of other
    days had to be written early."""
    import pyarrow.parquet as pq

    from meccano.export import parquetformat

    configure_export(tmp_path, monkeypatch, "parquet")
    monkeypatch.setattr(parquetformat, "ROW_GROUP_ROWS", 150)
    base = datetime(2024, 1, 1)
    rows = [fact(base + timedelta(days=d, seconds=s * 7), d * 1000 + s) for d in range(3) for s in range(400)]
    late = [fact(base + timedelta(seconds=5 + s), 90_000 + s) for s in range(120)]  # day 1, stored after day 3
    insert_facts(iotdb, rows)
    insert_facts(iotdb, late)
    options = load_options(load_settings(), {})
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    parts = [TableDay("Facts", "creationDate", "facts", d, *day_bounds(datetime.fromisoformat(d).date()), "full")
             for d in days]
    manifests = write_days_to(iotdb, parts, options, lambda p: tmp_path / "out" / p.day, "run-1",
                                 logging.getLogger("test"))
    for day, manifest in zip(days, manifests, strict=True):
        got, sizes = [], []
        for part in manifest.parts:
            file = pq.ParquetFile(tmp_path / "out" / day / part.key)
            sizes += [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
            got += file.read().column("data").to_pylist()
        expected = sorted(r["data"] for r in rows + late if r["creationDate"].date().isoformat() == day)
        assert sorted(got) == expected and manifest.rows == len(expected)
        assert len(sizes) > 1 and max(sizes) < 150 + batch_rows(options.part_bytes)  # a row group ends at the bound
    assert manifests[0].rows == 520


def test_an_unknown_file_format_or_gzip_level_is_named(tmp_path, monkeypatch):
    configure_export(tmp_path, monkeypatch, "xlsx")
    # config.yml problems: raised at load (ConfigError), before any task runs
    with pytest.raises(ConfigError, match=r"config.yml export.format: 'xlsx' is not a supported file format; "
                                          r"use csv or parquet"):
        load_options(load_settings(), {})
    cfg = tmp_path / "config.yml"
    cfg.write_text(cfg.read_text().replace("format: xlsx", "gzipLevel: 12"))
    with pytest.raises(ConfigError, match=r"config.yml export.gzipLevel: 12 must be 9 or less"):
        load_options(load_settings(), {})


@pytest.mark.parametrize("share", [0.0, 10.0], ids=["full-scan", "date-index"])
def test_several_days_in_one_pass_route_every_row_to_its_day(iotdb, tmp_path, monkeypatch, caplog, share):
    configure_export(tmp_path, monkeypatch)
    monkeypatch.setattr(write, "FULL_SCAN_SHARE", share)
    base = datetime(2024, 1, 1)
    rows = [fact(base + timedelta(days=d, seconds=s * 7), d * 1000 + s) for d in range(3) for s in range(400)]
    late = [fact(base + timedelta(seconds=5), 99_999)]  # day 1, stored after day 3: out of physical order
    insert_facts(iotdb, rows)
    insert_facts(iotdb, late)
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    out = _export(iotdb, "Facts", days, tmp_path / "out", caplog)
    assert ("sequential pass" if share == 0.0 else "through Facts_creationDate_idx") in caplog.text
    for day in days:
        expected = sorted(r["data"] for r in rows + late if r["creationDate"].date().isoformat() == day)
        assert sorted(int(r[11]) for r in out[day]) == expected
    assert len(out["2024-01-01"]) == 401


def test_the_line_tail_key_gives_the_blocks_of_the_servers_to_seconds(iotdb):
    """Facts (date column last): the fast path counts the lines' own date tails; it yields exactly the
    days, bytes and per-second counts of the exact path (raw columns + the server's TO_SECONDS),
    batches that straddle midnight included."""
    base = datetime(2024, 1, 1, 23, 59, 50)
    insert_facts(iotdb, [fact(base + timedelta(seconds=s // 3), s) for s in range(60)])
    columns = table_columns(iotdb, "Facts")
    assert text_key_of(columns, "creationDate")
    ranges = [("2024-01-01 00:00:00", "2024-01-03 00:00:00")]
    hint = access_hint(date_index(iotdb, "Facts", "creationDate"), False)
    with Snapshot(iotdb, 7) as snap:
        fast = list(snap.blocks("Facts", "creationDate", columns, ranges, hint))
        exact = list(snap.blocks("Facts", "creationDate", columns, ranges, hint, exact=True))
    assert fast == exact
    assert {b.day for b in fast} == {"2024-01-01", "2024-01-02"}
    assert any(b.rows < 7 for b in fast[:-1])  # a batch was split at midnight
    seconds = {}
    for b in fast:
        for second, n in b.seconds.items():
            seconds[(b.day, second)] = seconds.get((b.day, second), 0) + n
    assert seconds[("2024-01-01", 86_399)] == 3 and seconds[("2024-01-02", 0)] == 3
    assert sum(seconds.values()) == 60


def test_the_read_runs_below_the_callers_priority_and_hands_back_errors():
    import os
    import threading

    from meccano.export.stream import EXPORT_NICE, run_lowered

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = nice()
    assert run_lowered(nice, "t") == min(19, mine + EXPORT_NICE)
    assert nice() == mine  # the caller's thread keeps its priority

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_lowered(fail, "t")


def test_range_counts_equal_the_histogram_per_range_over_several_statements(iotdb, monkeypatch):
    """Verify's counts (one index range count per purge chunk, ``COUNT_BATCH`` per statement) give what the
    per-second histogram gives for the same ranges, the ranges' order kept."""
    from meccano.export import snapshot
    from meccano.export.stream import counts_per_chunk

    base = datetime(2024, 1, 1)
    insert_facts(iotdb, [fact(base + timedelta(seconds=s * 37 % 86_400), s) for s in range(900)])
    monkeypatch.setattr(snapshot, "COUNT_BATCH", 7)  # several statements, the last one short
    bounds = [f"{base + timedelta(seconds=s):%Y-%m-%d %H:%M:%S}" for s in range(0, 86_401, 1_800)]
    ranges = list(pairwise(bounds))
    with Snapshot(iotdb) as snap:
        counts = snap.range_counts("Facts", "creationDate", ranges)
        histogram = snap.histogram("Facts", "creationDate", [(bounds[0], bounds[-1])])
    chunks = [Chunk(a, b, 0) for a, b in ranges]
    assert counts == counts_per_chunk(histogram, chunks) and sum(counts) == 900 and len(counts) == 48


def test_a_utc_system_zone_is_read_as_plus_zero_and_nothing_else_is(iotdb):
    """``SYSTEM`` on a UTC host is the same zone as ``'+00:00'``, which the server converts without the OS per
    row; any other zone (a named one, an offset, a non-UTC host) is left as the session has it."""
    from meccano.export.snapshot import utc_system_zone

    assert utc_system_zone("SYSTEM", "UTC") and utc_system_zone("SYSTEM", "Etc/UTC")
    assert not utc_system_zone("SYSTEM", "CET") and not utc_system_zone("Europe/Madrid", "UTC")
    assert not utc_system_zone("+01:00", "UTC")
    with iotdb.engine.connect() as con:
        session, system = con.exec_driver_sql("SELECT @@session.time_zone, @@system_time_zone").one()
    with Snapshot(iotdb) as snap:
        cur = snap.con.cursor()
        cur.execute("SELECT @@session.time_zone")
        (zone,) = cur.fetchone()
    assert zone == ("+00:00" if utc_system_zone(session, system) else session)
