"""OpenLineage run events for Loopline's flows: START, then COMPLETE or FAIL, with datasets.

Events go, one JSON object a line, to ``<state>/lineage/openlineage.jsonl`` by default. With
``OPENLINEAGE_URL`` set (and optionally ``OPENLINEAGE_ENDPOINT``, ``OPENLINEAGE_API_KEY``)
they go over HTTP to Marquez or any OpenLineage backend instead. Jobs are named in
``OPENLINEAGE_NAMESPACE`` (default ``loopline``); ``OPENLINEAGE_DISABLED=true`` turns
emission off. Lineage records a run and is never a reason for it to fail: an emission error
is logged as a warning and the run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loopline.settings import Paths

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.transport import Transport

log = logging.getLogger(__name__)

EVENTS_FILE = "openlineage.jsonl"
DEFAULT_NAMESPACE = "loopline"
BENTOML_NAMESPACE = "bentoml"
# A backend that is down must not hold a flow for long: the client's default retries
# (5, with backoff) would add ~10 s per event.
HTTP_RETRY = {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.2}


@dataclass(frozen=True)
class Dataset:
    """A dataset a job reads or writes, named the OpenLineage way: namespace + name.

    ``path`` is set for local files so that, when DVC tracks the file, its hash is sent as
    the dataset version, read when the event is emitted (so after the run for outputs).
    """

    namespace: str
    name: str
    path: Path | None = None
    version: str | None = None


@dataclass
class LineageRun:
    """The run being recorded; a flow may add outputs it only learns while running."""

    run_id: str
    job_name: str
    inputs: list[Dataset]
    outputs: list[Dataset]


def file_dataset(paths: Paths, path: Path | str) -> Dataset:
    """A local file: relative to the project (in the project's namespace) when inside it."""
    file = Path(path)
    file = (file if file.is_absolute() else paths.project / file).absolute()
    if paths.workspace is not None and file.is_relative_to(paths.workspace):
        # A run's copy stands for the project's file it will publish, under the same name.
        relative = file.relative_to(paths.workspace).as_posix()
        return Dataset(f"file://{paths.project.as_posix()}", relative, path=file)
    if file.is_relative_to(paths.project):
        # Relative names keep a dataset's identity when the project is cloned elsewhere.
        relative = file.relative_to(paths.project).as_posix()
        return Dataset(f"file://{paths.project.as_posix()}", relative, path=file)
    return Dataset("file", file.as_posix(), path=file)


def model_dataset(tag: str) -> Dataset:
    """A model in the BentoML model store, versioned by its tag's version."""
    return Dataset(BENTOML_NAMESPACE, f"models/{tag}", version=_tag_version(tag))


def bento_dataset(tag: str) -> Dataset:
    """A Bento in the BentoML store, versioned by its tag's version."""
    return Dataset(BENTOML_NAMESPACE, f"bentos/{tag}", version=_tag_version(tag))


def feature_sources(paths: Paths) -> list[Dataset]:
    """The parquet files the Feast feature views read, as declared in ``feature_repo``."""
    try:
        from loopline import features

        sources = [getattr(view.batch_source, "path", "") for view in features.batch_views(paths)]
    except Exception as error:  # a broken definition fails the train step, not lineage
        log.warning("OpenLineage: cannot list the feature sources: %s", error)
        return []
    return [file_dataset(paths, source) for source in sources if source]


def events_file(paths: Paths) -> Path:
    """Where the file transport appends events."""
    return paths.lineage_dir / EVENTS_FILE


def read_events(paths: Paths) -> list[dict[str, Any]]:
    """Every event in the local events file, oldest first (empty before the first run)."""
    file = events_file(paths)
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


@contextmanager
def lineage_run(
    paths: Paths,
    job_name: str,
    inputs: Sequence[Dataset],
    outputs: Sequence[Dataset],
    run_id: str | None = None,
) -> Iterator[LineageRun]:
    """Emit START on enter, COMPLETE on a normal exit, FAIL (with the error) on an exception.

    ``run_id`` is the Prefect flow-run id when there is one, so both tools name the run alike.
    The exception is always re-raised; emission errors never are.
    """
    run = LineageRun(_run_uuid(run_id), job_name, list(inputs), list(outputs))
    client = open_client(paths)
    _emit(client, run, "START")
    try:
        yield run
    except Exception as error:
        _emit(client, run, "FAIL", error)
        raise
    except BaseException:
        # Interrupted or cancelled rather than failed.
        _emit(client, run, "ABORT")
        raise
    _emit(client, run, "COMPLETE")


def open_client(paths: Paths) -> OpenLineageClient | None:
    """The client for this environment, or None (logged) when it cannot be built."""
    try:
        from openlineage.client import OpenLineageClient

        return OpenLineageClient(transport=_transport(paths))
    except Exception as error:  # lineage must never stop a flow
        log.warning("OpenLineage events are off for this run: %s", error)
        return None


def namespace() -> str:
    """The namespace Loopline's jobs are named in."""
    return os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE


def _transport(paths: Paths) -> Transport:
    if url := os.environ.get("OPENLINEAGE_URL"):
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        config: dict[str, Any] = {"url": url, "retry": HTTP_RETRY}
        if endpoint := os.environ.get("OPENLINEAGE_ENDPOINT"):
            config["endpoint"] = endpoint
        if api_key := os.environ.get("OPENLINEAGE_API_KEY"):
            config["auth"] = {"type": "api_key", "apiKey": api_key}
        return HttpTransport(HttpConfig.from_dict(config))
    from openlineage.client.transport.file import FileConfig, FileTransport

    paths.lineage_dir.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(events_file(paths)), append=True))


def _emit(
    client: OpenLineageClient | None,
    run: LineageRun,
    state: str,
    error: BaseException | None = None,
) -> None:
    if client is None:
        return
    try:
        client.emit(_event(run, state, error))
    except Exception as failure:  # lineage must never stop a flow
        log.warning("OpenLineage %s event of %s not sent: %s", state, run.job_name, failure)


def _event(run: LineageRun, state: str, error: BaseException | None) -> RunEvent:
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run, job_type_job

    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}",
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error)),
        )
    job_type = job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration="PREFECT", jobType="FLOW"
    )
    # Outputs are versioned only once written: before, their DVC hash is the previous one.
    finished = state == "COMPLETE"
    return RunEvent(
        eventType=RunState(state),
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run.run_id, facets=run_facets),
        job=Job(namespace=namespace(), name=run.job_name, facets={"jobType": job_type}),
        inputs=[
            InputDataset(namespace=d.namespace, name=d.name, facets=_facets(d, versioned=True))
            for d in run.inputs
        ],
        outputs=[
            OutputDataset(namespace=d.namespace, name=d.name, facets=_facets(d, finished))
            for d in run.outputs
        ],
    )


def _facets(dataset: Dataset, versioned: bool) -> dict[str, Any]:
    from openlineage.client.facet_v2 import dataset_version_dataset

    version = dataset.version
    if version is None and versioned and dataset.path is not None:
        version = _dvc_hash(dataset.path)
    if version is None:
        return {}
    return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)}


def _dvc_hash(path: Path) -> str | None:
    from loopline.data import versioning

    try:
        return versioning.tracked_hash(path)
    except Exception:
        # Not tracked by DVC (no pointer, or an unreadable one): send the dataset unversioned.
        return None


def _run_uuid(run_id: str | None) -> str:
    if run_id:
        try:
            return str(UUID(run_id))
        except ValueError:
            log.warning("OpenLineage: run id %r is not a UUID; using a new one", run_id)
    from openlineage.client.uuid import generate_new_uuid

    return str(generate_new_uuid())


def _tag_version(tag: str) -> str | None:
    _, _, version = tag.partition(":")
    return version or None
