"""Lineage: where every served prediction came from, read back and sent out.

- :mod:`loopline.lineage.graph`: the graph from a data version through the feature
  service, the training run, the model and its Bento to its deployment changes, built from
  the registry (what ``loopline lineage`` and the dashboard draw). Its names are this
  package's, so callers write ``lineage.build_graph(...)``.
- :mod:`loopline.lineage.openlineage`: the same runs as OpenLineage events, emitted by the
  flows to a file or an HTTP endpoint (Marquez, DataHub).
"""

from loopline.lineage.graph import (
    BENTO,
    DATA,
    DEPLOYMENT,
    FEATURES,
    MODEL,
    RELATION,
    RUN,
    Edge,
    LineageGraph,
    Node,
    build_graph,
    deployment_history,
    prefect_run_url,
    render_text,
    to_json,
    versions_for_data,
)

__all__ = [
    "BENTO",
    "DATA",
    "DEPLOYMENT",
    "FEATURES",
    "MODEL",
    "RELATION",
    "RUN",
    "Edge",
    "LineageGraph",
    "Node",
    "build_graph",
    "deployment_history",
    "prefect_run_url",
    "render_text",
    "to_json",
    "versions_for_data",
]
