"""The lineage page's picture and details: a top-down graph and one key–value table per node.

Works on the ``loopline.lineage.to_json`` form of a graph. The graph runs top to bottom
with wrapped labels so it stays readable beside its details on a 1400 px screen; every
deployment change goes into one node (and one table) rather than a fan of boxes.
"""

from __future__ import annotations

import html
import json
import textwrap
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:
    import pandas as pd

NODE_COLOURS = {
    "data": "#d0e4f5",
    "features": "#e2d9f3",
    "run": "#fde2c8",
    "model": "#cde8d0",
    "bento": "#f5f0c8",
    "deployment": "#eeeeee",
    "predictions": "#f8d4d4",
}
TITLES = {
    "data": "Data version",
    "features": "Feature service",
    "run": "Prefect flow run",
    "model": "Model version",
    "bento": "Bento",
    "deployment": "Deployments",
    "predictions": "Predictions",
}
FIELDS = {
    "data_hash": "DVC md5",
    "data_path": "path",
    "data_git_rev": "git revision of the pointer",
    "feature_service": "feature service",
    "feature_definition_hash": "definition hash",
    "flow_run_id": "flow run",
    "tag": "tag",
    "model_name": "model",
    "code_commit": "code commit",
    "created_at": "created (UTC)",
    "model_sha256": "model SHA-256",
    "sbom": "SBOM file",
    "sbom_sha256": "SBOM SHA-256",
    "sbom_components": "SBOM components",
}
# Shown as code: identifiers one copies, never reads.
CODE = {"data_hash", "data_git_rev", "feature_definition_hash", "flow_run_id", "tag"}
CODE |= {"code_commit", "model_sha256", "sbom_sha256"}
GRAPH_STYLE = (
    '  rankdir=TB; nodesep=0.3; ranksep=0.4; bgcolor="transparent";\n'
    '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=15,'
    ' margin="0.18,0.08"];\n'
    '  edge [fontname="sans-serif", fontsize=13, fontcolor="#555555", color="#777777"];'
)
WRAP = 26
LONGEST_CODE = 36  # a flow run id; a 40-digit commit is known by its start


def _quoted(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _label(kind: str, *lines: str) -> str:
    """An HTML-like Graphviz label: the kind small and grey, then wrapped bold lines."""
    wrapped = [
        part
        for line in lines
        if line
        for part in textwrap.wrap(line, WRAP, break_on_hyphens=False)[:3]
    ]
    body = "<br/>".join(f"<b>{html.escape(part)}</b>" for part in wrapped[:1])
    body += "".join(f"<br/>{html.escape(part)}" for part in wrapped[1:])
    head = f'<font point-size="12" color="#555555">{html.escape(TITLES.get(kind, kind))}</font>'
    return f"<{head}<br/>{body}>"


def _node_lines(node: dict[str, Any]) -> tuple[str, ...]:
    a = node.get("attributes") or {}
    kind = node["kind"]
    if kind == "data" and a.get("data_hash"):
        return str(a["data_hash"])[:12], str(a.get("data_path") or "")
    if kind == "features" and a.get("feature_service"):
        return (str(a["feature_service"]),)
    if kind == "run" and a.get("flow_run_id"):
        return (f"{str(a['flow_run_id'])[:8]}…",)
    if kind == "model":
        stage = ", ".join([str(a["stage"]), *a.get("aliases", [])]) if a.get("stage") else ""
        return str(node["label"]), stage
    return (str(node["label"]),)


def lineage_dot(graph: dict[str, Any], served: list[dict[str, Any]] | None = None) -> str:
    """Graphviz DOT for a lineage graph, top-down, ending in what the version served."""
    lines = ["digraph lineage {", GRAPH_STYLE]
    chain = [n for n in graph["nodes"] if n["kind"] != "deployment"]
    deployments = [n for n in graph["nodes"] if n["kind"] == "deployment"]
    for node in chain:
        colour = NODE_COLOURS.get(node["kind"], "#ffffff")
        link = f', URL="{_quoted(node["link"])}", target="_blank"' if node.get("link") else ""
        lines.append(
            f'  "{_quoted(node["id"])}" [label={_label(node["kind"], *_node_lines(node))},'
            f' tooltip="{_quoted(node["label"])}", fillcolor="{colour}"{link}];'
        )
    ids = {n["id"] for n in chain}
    for edge in graph["edges"]:
        if edge["source"] in ids and edge["target"] in ids:
            lines.append(
                f'  "{_quoted(edge["source"])}" -> "{_quoted(edge["target"])}"'
                f' [label=" {_quoted(edge["relation"])}"];'
            )
    # What serves is the Bento (the model itself when none was built), as in the lineage.
    kinds = {n["kind"]: n["id"] for n in chain}
    last = kinds.get("bento") or kinds.get("model") or graph["nodes"][0]["id"]
    if deployments:
        latest = deployments[-1]["label"]
        count = f"{len(deployments)} change{'s' if len(deployments) > 1 else ''}, latest:"
        label = _label("deployment", count, latest)
        lines.append(f'  "deployments" [label={label}, fillcolor="{NODE_COLOURS["deployment"]}"];')
        lines.append(f'  "{_quoted(last)}" -> "deployments" [label=" deployed"];')
        last = "deployments"
    if served:
        arms = [
            f"{int(arm['predictions']):,} as {'shadow' if arm['shadow'] else arm['arm']}"
            for arm in served
        ]
        label = _label("predictions", *arms)
        lines.append(f'  "predictions" [label={label}, fillcolor="{NODE_COLOURS["predictions"]}"];')
        lines.append(f'  "{_quoted(last)}" -> "predictions" [label=" served"];')
    lines.append("}")
    return "\n".join(lines)


def reverse_dot(data_hash: str, runs_used: int, models: pd.DataFrame) -> str:
    """Graphviz DOT from one data version to the runs and model versions that used it."""
    lines = [
        "digraph used_by {",
        GRAPH_STYLE.replace("rankdir=TB", "rankdir=LR"),
        f'  "data" [label={_label("data", data_hash[:12])}, tooltip="{_quoted(data_hash)}",'
        f' fillcolor="{NODE_COLOURS["data"]}"];',
        f'  "runs" [label="{runs_used} training runs", fillcolor="{NODE_COLOURS["run"]}"];',
        '  "data" -> "runs" [label=" feeds"];',
    ]
    for row in models.head(40).itertuples():
        name = _quoted(row.version)
        colour = NODE_COLOURS["model"] if row.stage == "production" else "#ffffff"
        label = _label("model", str(row.version), str(row.stage))
        lines.append(f'  "{name}" [label={label}, fillcolor="{colour}"];')
        lines.append(f'  "runs" -> "{name}" [label=" produced"];')
    if len(models) > 40:
        lines.append(f'  "more" [label="… {len(models) - 40} more versions"]; "runs" -> "more";')
    lines.append("}")
    return "\n".join(lines)


# --- the details column ------------------------------------------------------------------


def _cell(value: Any, code: bool = False) -> str:
    if value is None or value == "" or value == []:
        return "–"
    if isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):  # a map of maps (training.candidates): one clause each
        text = "; ".join(f"{k}: {_inline(v)}" for k, v in sorted(value.items()))
    else:
        text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    if not code:
        return text
    # A SHA-256 is recognised by its start; in full it would push the table off the page.
    short = text if len(text) <= LONGEST_CODE else f"{text[:16]}…"
    return "`" + short.replace("`", "'") + "`"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in sorted(value.items()))
    return json.dumps(value, default=str)


def detail_rows(node: dict[str, Any]) -> list[tuple[str, str]]:
    """A node's attributes as (field, value) rows, Markdown-ready; nested maps one level flat."""
    rows: list[tuple[str, str]] = []
    for key, value in (node.get("attributes") or {}).items():
        field = FIELDS.get(key, key.replace("_", " "))
        if key == "flow_run_id" and value and node.get("link"):
            rows.append((field, f"[`{value}`]({node['link']}) (Prefect UI)"))
        elif key == "created_at" and isinstance(value, str):
            rows.append((field, _cell(value[:19].replace("T", " "))))
        elif isinstance(value, dict) and value:
            rows += [(f"{field}.{k}", _cell(v)) for k, v in sorted(value.items())]
        else:
            rows.append((field, _cell(value, code=key in CODE)))
    return rows


def table(rows: list[tuple[str, str]], header: tuple[str, ...] = ("field", "value")) -> str:
    """A Markdown table (it renders links, unlike a dataframe's cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def deployment_rows(graph: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Every change to where the version serves, newest first: when, what, who, why."""
    rows = []
    for node in reversed([n for n in graph["nodes"] if n["kind"] == "deployment"]):
        a = node["attributes"]
        when = str(a.get("at") or "")[:16].replace("T", " ")
        rows.append((when, _cell(node["label"]), _cell(a.get("actor")), _cell(a.get("reason"))))
    return rows


def show_details(graph: dict[str, Any]) -> None:
    """One bordered key–value table per node, with links to the pages that show more."""
    for node in graph["nodes"]:
        kind, a = node["kind"], node.get("attributes") or {}
        if kind == "deployment":
            continue
        with st.container(border=True):
            st.markdown(f"**{TITLES.get(kind, kind)}** · {node['label']}")
            st.markdown(table(detail_rows(node)))
            if kind == "data" and a.get("data_hash"):
                st.page_link(
                    "pages/data.py",
                    label="This data version on the Data page",
                    icon=":material/database:",
                    query_params={"data_version": a["data_hash"]},
                )
            if kind in ("model", "bento"):
                st.page_link(
                    "pages/models.py",
                    label=f"Gates and history of {graph['version']}",
                    icon=":material/rocket_launch:",
                    query_params={"version": graph["version"]},
                )
            if kind == "run" and not node.get("link"):
                st.caption("Set PREFECT_API_URL to link this run to the Prefect UI.")
    changes = deployment_rows(graph)
    if changes:
        with st.container(border=True):
            st.markdown(f"**Deployments** · {len(changes)} changes to where it serves")
            st.markdown(table(changes, ("when (UTC)", "change", "by", "why")))
