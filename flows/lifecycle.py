"""The whole loop once: ingest → train → package."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest import ingest
from flows.package import package
from flows.train import train


@flow(name="lifecycle")
def lifecycle(source: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Ingest a batch, train on it, and package the best model."""
    data = ingest(source=source, root=root)
    trained = train(root=root)
    packaged = package(root=root)
    return {"data": data, "train": trained, "package": packaged}
