"""The lineage of a model version: data → features → run → model → bento → deployments.

Everything is read from what was recorded as it happened: the lineage the package step
registered with the version (DVC hash, feature service, flow run, ...) and the registry's
history of stage, alias and policy changes. Nothing here stores anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from loopline.registry import (
    Action,
    HistoryEntry,
    InvalidInput,
    RegistryView,
    Stage,
    VersionRecord,
)

DATA = "data"
FEATURES = "features"
RUN = "run"
MODEL = "model"
BENTO = "bento"
DEPLOYMENT = "deployment"
# How each node kind relates to the one before it in the chain.
RELATION = {
    FEATURES: "feeds",
    RUN: "feeds",
    MODEL: "produced",
    BENTO: "packaged as",
    DEPLOYMENT: "deployed",
}


@dataclass(frozen=True)
class Node:
    """One thing in the lineage; ``attributes`` hold only JSON values."""

    id: str
    kind: str
    label: str
    attributes: dict[str, Any] = field(default_factory=dict)
    link: str | None = None


@dataclass(frozen=True)
class Edge:
    """``source`` led to ``target``."""

    source: str
    target: str
    relation: str


@dataclass(frozen=True)
class LineageGraph:
    """What one model version was made from and where it has served."""

    version: str
    model_name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def of_kind(self, kind: str) -> list[Node]:
        """The nodes of one kind, in graph order (deployments oldest first)."""
        return [node for node in self.nodes if node.kind == kind]

    @property
    def missing(self) -> list[str]:
        """Kinds the registered lineage did not record (a version registered by hand)."""
        kinds = {node.kind for node in self.nodes}
        return [kind for kind in (DATA, FEATURES, RUN, BENTO) if kind not in kinds]


def build_graph(registry: RegistryView, version: str) -> LineageGraph:
    """The lineage of ``version``; the registry's UnknownVersion if it was never registered."""
    record = registry.get(version)
    lineage = record.lineage
    found = (
        _data_node(lineage),
        _features_node(lineage),
        _run_node(lineage),
        _model_node(record),
        _bento_node(lineage),
    )
    # A link the lineage did not record is skipped, not invented: neighbours join directly.
    chain = [node for node in found if node is not None]
    edges = [Edge(a.id, b.id, RELATION[b.kind]) for a, b in pairwise(chain)]
    deployments = [_deployment_node(entry) for entry in deployment_history(registry, record)]
    # What serves is the Bento (the model itself when none was built).
    served = chain[-1]
    edges += [Edge(served.id, node.id, RELATION[DEPLOYMENT]) for node in deployments]
    return LineageGraph(
        version=record.version,
        model_name=record.model_name,
        nodes=(*chain, *deployments),
        edges=tuple(edges),
    )


def versions_for_data(registry: RegistryView, data_hash: str) -> list[VersionRecord]:
    """Every model version trained on data version ``data_hash`` (its DVC hash), oldest first."""
    data_hash = data_hash.strip()
    if not data_hash:
        raise InvalidInput("data hash must not be empty")
    return registry.versions_trained_on(data_hash)


def deployment_history(registry: RegistryView, record: VersionRecord) -> list[HistoryEntry]:
    """The entries that changed where ``record`` serves, oldest first.

    Its own stage, approval and alias changes, and the policy changes of its model made
    while it served (in production or as the challenger): a policy has no version of its own.
    """
    chosen: list[HistoryEntry] = []
    stage: Stage | None = None
    challenger = False
    for entry in registry.history(model_name=record.model_name):
        if entry.version == record.version:
            stage = entry.to_stage or stage
            if entry.action is Action.ALIAS_SET:
                challenger = True
            elif entry.action is Action.ALIAS_CLEARED:
                challenger = False
            if entry.action is not Action.REGISTER:
                chosen.append(entry)
        elif entry.action is Action.ALIAS_SET:
            challenger = False  # the alias moved to another version
        elif entry.action is Action.POLICY_SET and (stage is Stage.PRODUCTION or challenger):
            chosen.append(entry)
    return chosen


def prefect_run_url(flow_run_id: str) -> str | None:
    """The Prefect UI page of a flow run, when a Prefect API is configured."""
    api = os.environ.get("PREFECT_API_URL")
    if not api:
        return None
    # PREFECT_UI_URL wins: Prefect Cloud's UI is not its API URL minus /api.
    ui = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


def to_json(graph: LineageGraph) -> dict[str, Any]:
    """The graph as a JSON object: version, model, nodes, edges and what was not recorded."""
    return {
        "version": graph.version,
        "model_name": graph.model_name,
        "nodes": [
            {
                "id": node.id,
                "kind": node.kind,
                "label": node.label,
                "link": node.link,
                "attributes": node.attributes,
            }
            for node in graph.nodes
        ],
        "edges": [
            {"source": edge.source, "target": edge.target, "relation": edge.relation}
            for edge in graph.edges
        ],
        "missing": graph.missing,
    }


def render_text(graph: LineageGraph) -> str:
    """The graph as a tree for the terminal, from the data down to each deployment."""
    by_id = {node.id: node for node in graph.nodes}
    children: dict[str, list[Node]] = {}
    for edge in graph.edges:
        children.setdefault(edge.source, []).append(by_id[edge.target])
    targets = {edge.target for edge in graph.edges}
    lines = [f"lineage of {graph.version} (model {graph.model_name})", ""]
    for root in (node for node in graph.nodes if node.id not in targets):
        lines += _tree(root, children, prefix="", connector="")
    if graph.missing:
        lines += ["", f"not recorded: {', '.join(graph.missing)}"]
    return "\n".join(lines)


def _tree(node: Node, children: dict[str, list[Node]], prefix: str, connector: str) -> list[str]:
    below = children.get(node.id, [])
    head, *details = _describe(node)
    # Details line up under the head; a bar continues while children follow.
    inner = prefix + {"": "", "└── ": "    "}.get(connector, "│   ")
    lines = [f"{prefix}{connector}{head}"]
    lines += [f"{inner}{'│' if below else ' '}   {detail}" for detail in details]
    for index, child in enumerate(below):
        last = index == len(below) - 1
        lines += _tree(child, children, inner, "└── " if last else "├── ")
    return lines


def _describe(node: Node) -> list[str]:
    """A head line and detail lines for one node."""
    a = node.attributes
    if node.kind == DATA:
        return [
            f"data        {node.label}",
            f"DVC md5 {a['data_hash']}",
            f"git {a['data_git_rev'] or '(pointer not committed)'}",
        ]
    if node.kind == FEATURES:
        return [f"features    {node.label}", f"definition hash {a['feature_definition_hash']}"]
    if node.kind == RUN:
        return [f"run         {node.label}", *([node.link] if node.link else [])]
    if node.kind == MODEL:
        stage = ", ".join([a["stage"], *a["aliases"]])
        metrics = "  ".join(f"{k} {v:.4g}" for k, v in sorted(a["metrics"].items()))
        return [
            f"model       {node.label}  [{stage}]",
            f"{a['estimator'] or 'estimator not recorded'} {_compact(a['params'])}".rstrip(),
            f"metrics: {metrics or 'none'}",
            f"code {a['code_commit'] or 'unknown'}  created {a['created_at']}",
        ]
    if node.kind == BENTO:
        return [f"bento       {node.label}"]
    when = a["at"][:19].replace("T", " ")
    return [f"{when}  {node.label}  by {a['actor']}", f"why: {a['reason']}"]


def _compact(value: Any) -> str:
    return "" if value in (None, {}) else json.dumps(value, sort_keys=True)


def _data_node(lineage: dict[str, Any]) -> Node | None:
    data_hash = lineage.get("data_hash")
    if not data_hash:
        return None
    path = lineage.get("data_path")
    return Node(
        id=f"{DATA}:{data_hash}",
        kind=DATA,
        label=path or "(path not recorded)",
        attributes={
            "data_hash": data_hash,
            "data_path": path,
            "data_git_rev": lineage.get("data_git_rev"),
        },
    )


def _features_node(lineage: dict[str, Any]) -> Node | None:
    service = lineage.get("feature_service")
    if not service:
        return None
    definition = lineage.get("feature_definition_hash")
    return Node(
        id=f"{FEATURES}:{service}:{definition}",
        kind=FEATURES,
        label=f"feature service {service}",
        attributes={"feature_service": service, "feature_definition_hash": definition},
    )


def _run_node(lineage: dict[str, Any]) -> Node | None:
    run_id = lineage.get("flow_run_id")
    if not run_id:
        return None
    return Node(
        id=f"{RUN}:{run_id}",
        kind=RUN,
        label=f"Prefect flow run {run_id}",
        attributes={"flow_run_id": run_id},
        link=prefect_run_url(run_id),
    )


def _model_node(record: VersionRecord) -> Node:
    lineage = record.lineage
    return Node(
        id=f"{MODEL}:{record.version}",
        kind=MODEL,
        label=record.version,
        attributes={
            "tag": record.version,
            "model_name": record.model_name,
            "stage": record.stage.value,
            "aliases": list(record.aliases),
            "estimator": lineage.get("estimator"),
            "params": lineage.get("params"),
            "metrics": record.metrics,
            "training": lineage.get("training"),
            "code_commit": lineage.get("code_commit"),
            "created_at": lineage.get("created_at") or record.created_at.isoformat(),
            "model_sha256": lineage.get("model_sha256"),
        },
    )


def _bento_node(lineage: dict[str, Any]) -> Node | None:
    bento = lineage.get("bento")
    if not bento:
        return None
    # The Bento's SBOM (CycloneDX, stored in the Bento's folder): what it was built with.
    sbom: dict[str, Any] = {
        k: lineage[k] for k in ("sbom", "sbom_sha256", "sbom_components") if k in lineage
    }
    return Node(id=f"{BENTO}:{bento}", kind=BENTO, label=bento, attributes={"tag": bento, **sbom})


def _deployment_node(entry: HistoryEntry) -> Node:
    return Node(
        id=f"{DEPLOYMENT}:{entry.seq}",
        kind=DEPLOYMENT,
        label=_change(entry),
        attributes={
            "seq": entry.seq,
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action.value,
            "from_stage": entry.from_stage.value if entry.from_stage else None,
            "to_stage": entry.to_stage.value if entry.to_stage else None,
            "reason": entry.reason,
            "details": entry.details,
        },
    )


def _change(entry: HistoryEntry) -> str:
    """What a history entry changed, in words."""
    details = entry.details
    if entry.action is Action.POLICY_SET:
        return f"policy {details['kind']} (challenger share {details['challenger_share']:.0%})"
    if entry.action is Action.ALIAS_SET:
        return f"{details.get('alias', 'alias')} alias set"
    if entry.action is Action.ALIAS_CLEARED:
        return f"{details.get('alias', 'alias')} alias cleared"
    if entry.action is Action.APPROVAL_REQUESTED:
        return f"promotion requested, awaiting approval by {details.get('approver')}"
    move = " → ".join(s.value for s in (entry.from_stage, entry.to_stage) if s is not None)
    prefix = {Action.APPROVED: "approved: ", Action.ROLLBACK: "rollback: "}.get(entry.action, "")
    return f"{prefix}{move}"
