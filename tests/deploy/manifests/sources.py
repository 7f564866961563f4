"""Where an object comes from: which file of a kustomization sets which field, so a
problem names the file to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# --- where an object comes from ----------------------------------------------------------


def _docs(file: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(file.read_text()) if isinstance(d, dict)]


def kustomize_sources(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every resource and patch file of a kustomization, base first."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    out: list[tuple[Path, dict[str, Any]]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            out += kustomize_sources(path)
        else:
            out += [(path, d) for d in _docs(path)]
    for generator in kustomization.get("configMapGenerator", []):
        literals = dict(item.split("=", 1) for item in generator.get("literals", []))
        files = {item.split("=", 1)[0]: item for item in generator.get("files", [])}
        doc = {
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": {**literals, **files},
        }
        out.append((directory / "kustomization.yaml", doc))
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            path = (directory / patch["path"]).resolve()
            out += [(path, d) for d in _docs(path)]
        else:  # an inline patch: it lives in the kustomization itself
            target = patch.get("target", {})
            doc = {"kind": target.get("kind"), "metadata": {"name": target.get("name")}}
            out.append((directory / "kustomization.yaml", doc))
    return out


class Sources:
    """Which file sets which field of which object (the last file that sets it wins)."""

    def __init__(self, overlay: Path, root: Path) -> None:
        self.root = root
        self.entries = kustomize_sources(overlay)

    def files(self, kind: str, name: str) -> list[Path]:
        return [
            f
            for f, d in self.entries
            if d.get("kind") == kind and d.get("metadata", {}).get("name") == name
        ]

    def of(self, kind: str, name: str, path: tuple[str, ...]) -> str:
        """The file that last sets ``path`` (list items chosen by name) on the object; when
        none does, the files that define or patch the object."""
        setting = [
            f
            for f, d in self.entries
            if d.get("kind") == kind
            and d.get("metadata", {}).get("name") == name
            and _lookup(d, path) is not _MISSING
        ]
        chosen = setting[-1:] or self.files(kind, name)
        return ", ".join(dict.fromkeys(self._shown(f) for f in chosen)) or "(no source file)"

    def _shown(self, file: Path) -> str:
        return str(file.relative_to(self.root)) if file.is_relative_to(self.root) else str(file)


_MISSING = object()


def _lookup(node: Any, path: tuple[str, ...]) -> Any:
    for token in path:
        if isinstance(node, dict):
            node = node.get(token, _MISSING)
        elif isinstance(node, list):
            matches = [
                item for item in node if isinstance(item, dict) and item.get("name") == token
            ]
            node = matches[0] if matches else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def dotted(path: tuple[str, ...]) -> str:
    """``spec.template.spec.containers[service].ports[http]``: list items by their name."""
    out = ""
    after_list = False
    for token in path:
        if after_list:
            out += f"[{token}]"
            after_list = False
        else:
            out += ("." if out else "") + token
            after_list = token in _LISTS
    return out


_LISTS = frozenset({"containers", "initContainers", "ports", "env", "volumes", "volumeMounts"})
