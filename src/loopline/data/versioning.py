"""DVC: every accepted batch becomes a content-addressed data version.

The cache and the default remote live in the state folder; ``LOOPLINE_DVC_REMOTE``
points the remote anywhere DVC can reach (s3://, gs://, ssh://, a shared folder).

The pointer of each version, and after each published run the pipeline's record
(``dvc.lock`` and the metrics files), are committed to git (:mod:`loopline.data.history`
says why: DVC's experiments start from ``HEAD``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

from loopline.data import history
from loopline.settings import Paths

log = logging.getLogger(__name__)

REMOTE_NAME = "loopline"
LOCK_FILE = "dvc.lock"


def ensure_repo(paths: Paths) -> None:
    """Initialise DVC in the project if needed and point its cache and remote at the state."""
    from dvc.repo import Repo

    if not (paths.project / ".dvc").is_dir():
        no_scm = not (paths.project / ".git").exists()
        Repo.init(str(paths.project), no_scm=no_scm)
    paths.dvc_cache.mkdir(parents=True, exist_ok=True)
    remote = os.environ.get("LOOPLINE_DVC_REMOTE") or str(paths.dvc_remote)
    if "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)
    # config.local is per machine and never committed: the state folder may move.
    local = paths.project / ".dvc" / "config.local"
    local.write_text(
        "[core]\n"
        "    analytics = false\n"
        f"    remote = {REMOTE_NAME}\n"
        f"    site_cache_dir = {paths.dvc_site_cache}\n"
        "[cache]\n"
        f"    dir = {paths.dvc_cache}\n"
        f"['remote \"{REMOTE_NAME}\"']\n"
        f"    url = {remote}\n"
    )


def _pointer(target: Path) -> Path:
    return target.with_name(target.name + ".dvc")


def track(paths: Paths, target: Path) -> str:
    """``dvc add`` + ``dvc push`` one file, and commit its pointer to git; returns its content
    hash (the data version)."""
    from dvc.repo import Repo

    # DVC's advice to `git add` the pointer is for its own command line: Loopline commits it.
    logging.getLogger("dvc.repo.scm_context").setLevel(logging.WARNING)
    pointer = _pointer(target)
    with Repo(str(paths.project)) as repo:
        repo.add(str(target))
        # Name the .dvc file: a bare path is also looked up as a dvc.yaml stage and fails.
        repo.push(targets=[str(pointer)])
    data_hash = tracked_hash(target)
    # The folder's .gitignore is DVC's, written when nothing above ignored the file yet.
    ignores = pointer.parent / ".gitignore"
    rows = _rows(target)
    history.commit(
        paths.project,
        [pointer, ignores],
        f"data: version {data_hash[:8]} of {paths.shown(target)}{rows} (loopline ingest)",
    )
    return data_hash


def _rows(target: Path) -> str:
    try:
        import pyarrow.parquet as pq

        return f", {pq.ParquetFile(target).metadata.num_rows:,} rows"
    except Exception:  # only the commit message's detail: never a reason to fail an ingest
        return ""


def record_pipeline(paths: Paths, data_hash: str, model: str) -> str | None:
    """Record what a run just published as the pipeline's result, and commit it to git.

    A flow run computes the same stages ``dvc repro`` would, in its own workspace, then
    publishes their outputs into the project. ``dvc commit`` writes those outputs' hashes
    into ``dvc.lock`` (and the files into DVC's cache), so ``dvc status`` says the pipeline
    is up to date, ``dvc exp run`` starts from these outputs instead of deleting them, and
    ``dvc exp show`` has the baseline's metrics. Only when the project still holds the data
    version the run trained on (an ingest may have come since) and every output is there.
    Returns the git commit made, or None.
    """
    from loopline import locks

    published = paths.published
    project = published.project
    with locks.publishing(published, run_id=paths.workspace.name if paths.workspace else None):
        pointer = _pointer(published.raw_batch)
        if not pointer.is_file() or tracked_hash(published.raw_batch) != data_hash:
            log.info("pipeline not recorded in %s: the data version changed since", LOCK_FILE)
            return None
        outputs = declared_outputs(project)
        missing = [str(paths.shown(out)) for out in outputs if not out.exists()]
        if missing:
            log.info("pipeline not recorded in %s: no %s", LOCK_FILE, ", ".join(missing))
            return None
        # DVC's command line, in the project: its Python API resolves paths against the
        # process's working directory, which a flow does not own.
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "commit", "--force", "--quiet"],
            cwd=project,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            # The model is published already; only DVC's view of it is behind.
            why = (done.stderr or done.stdout).strip().splitlines()
            log.warning("pipeline not recorded in %s: %s", LOCK_FILE, why[-1] if why else "")
            return None
        # Outputs DVC does not cache (the metrics) belong in git, beside the lock, and so do
        # the .gitignore entries DVC writes for the ones it caches.
        in_git = [out for out, cached in outputs.items() if not cached]
        ignores = {out.parent / ".gitignore" for out, cached in outputs.items() if cached}
        return history.commit(
            project,
            [pointer, project / LOCK_FILE, *in_git, *sorted(ignores)],
            f"pipeline: {model} trained on data version {data_hash[:8]} (loopline run)",
        )


def declared_outputs(project: Path) -> dict[Path, bool]:
    """Every output ``dvc.yaml`` declares (outs, metrics, plots), and whether DVC caches it."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text()).get("stages") or {}
    found: dict[Path, bool] = {}
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                found[project / name] = bool((options or {}).get("cache", True))
    return found


def tracked_hash(target: Path) -> str:
    """The hash DVC recorded for a tracked file, read from its ``.dvc`` file."""
    meta = _pointer(target)
    if not meta.is_file():
        raise FileNotFoundError(f"{target} is not tracked by DVC yet (no {meta.name})")
    outs = yaml.safe_load(meta.read_text())["outs"]
    return str(outs[0]["md5"])


def pointer_revision(paths: Paths, target: Path) -> str | None:
    """The git commit that last changed the file's ``.dvc`` pointer, when it is committed."""
    meta = _pointer(target)
    result = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--", str(meta)],
        cwd=paths.project,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or None


def restore(paths: Paths, target: Path, data_hash: str) -> Path:
    """Bring back the file content of an earlier data version from the cache or remote."""
    from dvc.repo import Repo

    cached = paths.dvc_cache / "files" / "md5" / data_hash[:2] / data_hash[2:]
    if not cached.is_file():
        with Repo(str(paths.project)) as repo:
            repo.fetch(targets=[str(target)])
    if not cached.is_file():
        raise FileNotFoundError(f"data version {data_hash} is in neither the DVC cache nor remote")
    return cached
