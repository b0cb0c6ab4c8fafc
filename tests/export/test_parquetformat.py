"""Parquet typing of the export's CSV blocks (no service needed: Arrow only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from meccano.export.model import Column
from meccano.export.parquetformat import CsvToArrow, ParquetPart, _empty_for_null

COLUMNS = [Column("channel", "string", "VARCHAR(50)", nullable=False), Column("memo", "string", "VARCHAR(100)"),
           Column("data", "number", "INTEGER", nullable=False), Column("creationDate", "datetime", "TIMESTAMP", False)]
ROOT = Path(__file__).resolve().parents[2]


def test_an_empty_not_null_string_is_the_empty_string_and_an_empty_nullable_one_is_null():
    converter = CsvToArrow(COLUMNS)
    table = converter.table(b',,1,2024-01-01 00:00:00\n"",x,2,2024-01-01 00:00:01\nch,"",3,2024-01-01 00:00:02\n')
    assert table.schema == converter.schema and table.column("channel").null_count == 0
    assert table.to_pylist() == [
        {"channel": "", "memo": None, "data": 1, "creationDate": datetime(2024, 1, 1)},
        {"channel": "", "memo": "x", "data": 2, "creationDate": datetime(2024, 1, 1, 0, 0, 1)},
        {"channel": "ch", "memo": "", "data": 3, "creationDate": datetime(2024, 1, 1, 0, 0, 2)}]


def test_nulls_become_empty_strings_in_sliced_chunks_without_touching_the_other_values():
    column = pa.chunked_array([pa.array(["a", None, "bc", None, "def"])[1:], pa.array([None, "g"])])
    fixed = _empty_for_null(column)
    assert fixed.null_count == 0 and fixed.to_pylist() == ["", "bc", "", "def", "", "g"]
    assert _empty_for_null(pa.chunked_array([pa.array(["a"])])).to_pylist() == ["a"]


def test_a_part_of_many_blocks_keeps_every_row(tmp_path):
    converter = CsvToArrow(COLUMNS)
    part = ParquetPart(tmp_path / "p.parquet", converter)
    for block in range(5):
        part.write(b"".join(b",m%d,%d,2024-01-01 00:00:00\n" % (i, block * 100 + i) for i in range(100)))
    part.close()
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column("data").to_pylist() == list(range(500)) and set(table.column("channel").to_pylist()) == {""}


def test_typing_blocks_adds_little_memory_to_the_process(tmp_path):
    """The process's anonymous memory while 40 blocks of 5,000 rows (empty NOT NULL strings in each) are typed
    and written grows by far less than the export's 100 MB bound. ``pyarrow.compute``'s first call alone
    (which ``fill_null`` would make) costs ~28 MB: it must stay out of this path."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT / "include")!r}, {str(ROOT)!r}]
        from pathlib import Path
        import pyarrow.csv, pyarrow.parquet
        from meccano.export.parquetformat import CsvToArrow, ParquetPart
        from tests.export.test_parquetformat import COLUMNS

        def anon():
            for line in open("/proc/self/smaps_rollup"):
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) // 1024

        block = b"".join(b",m%d,%d,2024-01-01 00:00:%02d\\n" % (i % 97, i, i % 60) for i in range(5000))
        start = peak = anon()
        part = ParquetPart(Path(sys.argv[1]), CsvToArrow(COLUMNS))
        for _ in range(40):
            part.write(block)
            peak = max(peak, anon())
        part.close()
        print(max(peak, anon()) - start)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.parquet")], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout.strip()) < 30, out.stdout
