"""Data versions (DVC), the current batch's schema and validation, refused batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import params
from loaders.registry import versions
from loaders.runs import runs

if TYPE_CHECKING:
    import pandas as pd

MAX_REJECTED = 200


@st.cache_data(ttl=60, show_spinner=False)
def current_data(raw_batch: str) -> dict[str, Any] | None:
    """The accepted batch training uses now: its DVC hash, rows and columns."""
    import pyarrow.parquet as pq

    from loopline.data.versioning import tracked_hash

    batch = Path(raw_batch)
    if not batch.is_file():
        return None
    try:
        data_hash = tracked_hash(batch)
    except FileNotFoundError:
        data_hash = None
    meta = pq.ParquetFile(batch).metadata
    return {"data_hash": data_hash, "rows": meta.num_rows, "columns": meta.num_columns}


@st.cache_data(ttl=60, show_spinner=False)
def data_versions(url: str, raw_batch: str, dvc_cache: str) -> pd.DataFrame:
    """Every data version a run or model used, with row counts read from DVC's cache."""
    import pandas as pd

    used = [
        frame[["data_hash", when]].rename(columns={when: "at"}).assign(kind=kind)
        for frame, when, kind in (
            (runs(url), "started_at", "runs"),
            (versions(url), "created_at", "models"),
        )
        if not frame.empty
    ]
    columns = ["data_hash", "current", "rows", "first_seen", "last_seen", "runs", "models"]
    current = current_data(raw_batch)
    if current and current["data_hash"]:  # accepted, perhaps not trained on yet
        now = pd.Timestamp.now(tz="UTC")
        used.append(pd.DataFrame([{"data_hash": current["data_hash"], "at": now, "kind": "-"}]))
    if not used:
        return pd.DataFrame(columns=columns)
    events = pd.concat(used, ignore_index=True).dropna(subset=["data_hash"])
    frame = events.groupby("data_hash").agg(first_seen=("at", "min"), last_seen=("at", "max"))
    counts = pd.crosstab(events["data_hash"], events["kind"])
    frame = frame.join(counts.reindex(columns=["runs", "models"], fill_value=0)).reset_index()
    frame["current"] = frame["data_hash"] == (current or {}).get("data_hash")
    frame["rows"] = [cached_rows(Path(dvc_cache), h) for h in frame["data_hash"]]
    return frame[columns].sort_values("first_seen", ascending=False, ignore_index=True)


def cached_rows(dvc_cache: Path, data_hash: str) -> int | None:
    """Rows of a data version kept in DVC's cache (the Parquet footer only), if present."""
    import pyarrow.parquet as pq

    if len(data_hash) < 3:
        return None
    path = dvc_cache / "files" / "md5" / data_hash[:2] / data_hash[2:]
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):
        return None


@st.cache_data(ttl=60, show_spinner=False)
def schema(raw_batch: str, params_file: str) -> pd.DataFrame:
    """Columns of the current batch with their Arrow type and role in the data contract."""
    import pandas as pd
    import pyarrow.parquet as pq

    batch = Path(raw_batch)
    if not batch.is_file():
        return pd.DataFrame(columns=["column", "type", "role"])
    dataset = params(params_file).dataset
    roles = {dataset.entity: "entity", dataset.timestamp: "timestamp", dataset.label: "label"}
    roles |= {name: f"feature ({spec.kind})" for name, spec in dataset.features.items()}
    shown = {
        "drop": "personal data (dropped at ingestion)",
        "keep": "personal data (sealed per subject)",
        "identifier": "personal data (pseudonym)",
    }
    roles |= {name: shown[how] for name, how in dataset.pii.items()}
    roles[dataset.entity] = "entity (pseudonym)"
    arrow = pq.read_schema(batch)
    rows = [{"column": f.name, "type": str(f.type), "role": roles.get(f.name, "")} for f in arrow]
    return pd.DataFrame(rows)


@st.cache_data(ttl=60, show_spinner=False)
def validation(artifacts: str) -> dict[str, Any] | None:
    target = Path(artifacts) / "validation.json"
    if not target.is_file():
        return None
    loaded: dict[str, Any] = json.loads(target.read_text())
    return loaded


@st.cache_data(ttl=30, show_spinner=False)
def rejected_batches(rejected: str) -> pd.DataFrame:
    """Batches the contract refused, newest first, with every problem it found."""
    import pandas as pd

    folders = sorted((p for p in Path(rejected).glob("*") if p.is_dir()), reverse=True)
    rows = []
    for folder in folders[:MAX_REJECTED]:
        try:
            reason = json.loads((folder / "reason.json").read_text())
        except (OSError, ValueError):
            continue
        problems = [str(p) for p in reason.get("problems", [])]
        rows.append(
            {
                "at": _stamp(str(reason.get("at", folder.name))),
                "source": reason.get("source"),
                "problems": len(problems),
                "reasons": "; ".join(problems),
                "kept_in": str(folder),
            }
        )
    return pd.DataFrame(rows, columns=["at", "source", "problems", "reasons", "kept_in"])


def _stamp(text: str) -> datetime | str:
    for layout in ("%Y%m%dT%H%M%S%fZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return text
