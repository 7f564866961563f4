"""DVC: every accepted batch becomes a content-addressed data version.

The cache and the default remote live in the state folder; ``LOOPLINE_DVC_REMOTE``
points the remote anywhere DVC can reach (s3://, gs://, ssh://, a shared folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from loopline.settings import Paths

REMOTE_NAME = "loopline"


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


def track(paths: Paths, target: Path) -> str:
    """``dvc add`` + ``dvc push`` one file; returns its content hash (the data version)."""
    import logging

    from dvc.repo import Repo

    # DVC's advice to `git add` the pointer is for its own command line; Loopline records it.
    logging.getLogger("dvc.repo.scm_context").setLevel(logging.WARNING)
    with Repo(str(paths.project)) as repo:
        repo.add(str(target))
        # Name the .dvc file: a bare path is also looked up as a dvc.yaml stage and fails.
        repo.push(targets=[str(target.with_name(target.name + ".dvc"))])
    return tracked_hash(target)


def tracked_hash(target: Path) -> str:
    """The hash DVC recorded for a tracked file, read from its ``.dvc`` file."""
    meta = target.with_name(target.name + ".dvc")
    if not meta.is_file():
        raise FileNotFoundError(f"{target} is not tracked by DVC yet (no {meta.name})")
    outs = yaml.safe_load(meta.read_text())["outs"]
    return str(outs[0]["md5"])


def pointer_revision(paths: Paths, target: Path) -> str | None:
    """The git commit that last changed the file's ``.dvc`` pointer, when it is committed."""
    import subprocess

    meta = target.with_name(target.name + ".dvc")
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
