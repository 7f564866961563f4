"""The erasure proof's scanner finds a person inside every format Loopline's stores use."""

from __future__ import annotations

import gzip
import sqlite3
import zipfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.security import leaks

RAW_ID = 3_141_592_653_589_793_238
NAME = "Zebulon Quarrington-Vasquez"


def test_every_format_is_read_through(tmp_path: Path) -> None:
    wanted = leaks.needles(RAW_ID, [NAME])
    table = pa.table({"customer_id": [1, RAW_ID, None], "contact": ["a", NAME, None]})
    pq.write_table(table, tmp_path / "0f3a9c", compression="zstd")  # as DVC's cache names it
    (tmp_path / "log.gz").write_bytes(gzip.compress(f"served {NAME}".encode()))
    (tmp_path / "object").write_bytes(zlib.compress(f"blob {RAW_ID}".encode()))
    with zipfile.ZipFile(tmp_path / "bundle.bin", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner.txt", NAME * 3)
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("CREATE TABLE t (id INTEGER)")
        db.execute("INSERT INTO t VALUES (?)", (RAW_ID,))
    (tmp_path / "clean.txt").write_text("nothing to see")

    hits = leaks.scan([tmp_path], wanted)
    by_file = {Path(h.split(" (", 1)[0]).name for h in hits}
    assert by_file == {"0f3a9c", "log.gz", "object", "bundle.bin", "store.db"}
    assert any("0f3a9c (parquet)" in h for h in hits)  # its pages can hide it from bytes
    assert leaks.scan([tmp_path], wanted, skip=[tmp_path]) == []
