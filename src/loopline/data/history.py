"""A data version is a git commit: its DVC pointer, ``dvc.lock`` and metrics, committed alone.

DVC keeps data out of git and puts a small pointer (``data/raw/dataset.parquet.dvc``) and the
pipeline's record (``dvc.lock``: every stage's input and output hashes) in git instead; a
data version *is* the commit of its pointer. ``dvc exp run`` relies on that: it starts every
experiment from ``HEAD``, first checks out what ``HEAD`` records, then commits the result on
a ref of its own. With the pointer and lock left uncommitted (what ``dvc add`` alone leaves),
that checkout finds no hash for any output and deletes them ("No file hash info found ...
It won't be created"), the whole pipeline reruns from the raw file, a failure leaves the
workspace without its data or model, and the experiment's metrics are not in its commit
(``dvc exp show`` prints ``!``). Staging the files (DVC's ``core.autostage``) is not enough:
a workspace experiment resets git's index, so the next experiment is back to untracked.

So Loopline commits, when the project is a git work tree on a branch with no merge or
rebase under way: only those files (``git commit --only``: whatever else the user staged
stays staged and uncommitted), as their own commit with a message naming the data version,
and without the user's commit hooks (a machine-made record, as DVC's own experiment commits
are). Set ``LOOPLINE_DATA_COMMITS=off`` to have them staged instead (DVC's autostage, set in
``.dvc/config``) and commit them yourself. A commit that cannot be made is logged and
changes nothing: the data version is made either way.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

COMMITS_ENV = "LOOPLINE_DATA_COMMITS"
# Only when git has no identity configured (a fresh container); the user's otherwise.
FALLBACK_IDENTITY = ("-c", "user.name=Loopline", "-c", "user.email=loopline@localhost")
IN_PROGRESS = {
    "MERGE_HEAD": "merge",
    "CHERRY_PICK_HEAD": "cherry-pick",
    "REVERT_HEAD": "revert",
    "rebase-merge": "rebase",
    "rebase-apply": "rebase",
}


def enabled() -> bool:
    """Whether Loopline commits data versions (``LOOPLINE_DATA_COMMITS``, on by default)."""
    value = os.environ.get(COMMITS_ENV, "on").strip().lower()
    return value not in ("0", "off", "false", "no")


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True)


def not_committable(project: Path) -> str | None:
    """Why the project's git repository should not get a commit now, or None if it can."""
    try:
        inside = _git(project, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        return "git is not installed"
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return "the project is not a git repository"
    if _git(project, "symbolic-ref", "-q", "HEAD").returncode != 0:
        return "HEAD is detached (not on a branch)"
    for marker, operation in IN_PROGRESS.items():
        where = _git(project, "rev-parse", "--git-path", marker).stdout.strip()
        if where and (project / where).exists():
            return f"a git {operation} is in progress"
    return None


def commit(project: Path, files: list[Path], message: str) -> str | None:
    """Commit exactly ``files`` (those that exist and git does not ignore) on their own.

    Returns the new commit, or None when nothing changed, commits are off, or the repository
    is not in a state to commit into (logged).
    """
    if not enabled():
        return None
    reason = not_committable(project)
    if reason is not None:
        log.info("data version not committed to git: %s", reason)
        return None
    wanted = [str(f.relative_to(project)) for f in files if f.exists()]
    # A user who ignores a file (say all of artifacts/) keeps it out of git: respected.
    ignored = set(_git(project, "check-ignore", "--", *wanted).stdout.split()) if wanted else set()
    paths = [p for p in wanted if p not in ignored]
    if not paths:
        return None
    added = _git(project, "add", "--", *paths)
    if added.returncode != 0:
        log.warning("data version not committed to git: git add: %s", _first(added.stderr))
        return None
    if _git(project, "diff", "--cached", "--quiet", "--", *paths).returncode == 0:
        return None
    identity = () if _git(project, "config", "user.email").stdout.strip() else FALLBACK_IDENTITY
    done = _git(project, *identity, "commit", "--only", "--no-verify", "-qm", message, "--", *paths)
    if done.returncode != 0:
        log.warning("data version not committed to git: %s", _first(done.stderr or done.stdout))
        return None
    return _git(project, "rev-parse", "HEAD").stdout.strip()


def _first(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "git failed"
