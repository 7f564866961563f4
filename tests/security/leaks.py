"""Find a person in files: every byte of every file, and what compressed formats hold.

Raw bytes alone would miss a name inside a compressed Parquet page (DVC's cache holds
Parquet files under content hashes, with no extension), a gzip'd log, a zip or a git
object, so each file is also read through whichever of those formats it is, by its
magic bytes rather than its name.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path


def needles(raw_id: int, texts: Iterable[str]) -> dict[str, bytes]:
    """What gives the subject away: their id as text and as a 64-bit integer either way
    round (Parquet and numpy store little-endian, SQLite big-endian), and each text."""
    found = {
        "id": str(raw_id).encode(),
        "id as int64 (little-endian)": struct.pack("<q", raw_id),
        "id as int64 (big-endian)": struct.pack(">q", raw_id),
    }
    for text in texts:
        found[repr(text)] = text.encode()
        found[f"{text!r} (UTF-16)"] = text.encode("utf-16-le")
    return found


def scan(roots: Iterable[Path], wanted: dict[str, bytes], skip: Iterable[Path] = ()) -> list[str]:
    """``file (layer): needle`` for every hit; an empty list when nothing gives them away."""
    skipped = [s.resolve() for s in skip]
    hits = []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for file in files:
            if file.is_symlink() or not file.is_file():
                continue
            if any(file.resolve().is_relative_to(s) for s in skipped):
                continue
            for layer, data in layers(file):
                hits += [f"{file} ({layer}): {name}" for name, b in wanted.items() if b in data]
    return hits


def scanned_files(roots: Iterable[Path], skip: Iterable[Path] = ()) -> int:
    """How many files :func:`scan` reads (so a test can say the scan saw something)."""
    skipped = [s.resolve() for s in skip]
    return sum(
        1
        for root in roots
        for file in ([root] if root.is_file() else root.rglob("*"))
        if file.is_file() and not any(file.resolve().is_relative_to(s) for s in skipped)
    )


def layers(file: Path) -> Iterator[tuple[str, bytes]]:
    data = file.read_bytes()
    yield "bytes", data
    if data[:4] == b"PAR1":
        yield "parquet", _parquet_text(data)
    elif data[:2] == b"\x1f\x8b":
        yield "gzip", _quietly(lambda: gzip.decompress(data))
    elif data[:2] == b"PK" and zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"zip member {member}", archive.read(member)
    elif data[:1] == b"x" and len(data) > 2 and (data[0] * 256 + data[1]) % 31 == 0:
        yield "zlib", _quietly(lambda: zlib.decompress(data))  # git's loose objects


def _parquet_text(data: bytes) -> bytes:
    """Every value of every column, as text (ints in decimal), plus int64 columns' bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    parts = [table.to_pandas().to_csv(index=False).encode()]
    for column in table.columns:
        if pa.types.is_integer(column.type):
            values = pc.fill_null(column.cast(pa.int64()), 0).to_numpy()
            parts.append(values.astype("<i8").tobytes())
    return b"\n".join(parts)


def _quietly(read: object) -> bytes:
    try:
        return bytes(read())  # type: ignore[operator]
    except (OSError, EOFError, zlib.error):
        return b""


def prefect_database_files() -> list[Path]:
    """The Prefect server's SQLite database (with its WAL), wherever the harness keeps it."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value())
    assert url.startswith("sqlite"), url
    database = Path(url.split("///", 1)[1])
    files = [f for f in database.parent.glob(database.name + "*") if f.is_file()]
    assert files, database
    return files
