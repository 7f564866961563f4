"""The Prefect deployments `make up` serves: schedules, event triggers and on-demand actions.

Served flows (``prefect.serve``) rather than a ``prefect.yaml`` with a work pool: one
process runs them all on this machine with no worker to manage, and the same flows can
be deployed to a work pool on shared infrastructure unchanged.
"""

from __future__ import annotations

from typing import Any

DEPLOYMENT = "loopline"


def deployments(params: Any) -> list[Any]:
    """Every deployment, named ``<flow>/loopline``."""
    from flows.ingest import ingest
    from flows.lifecycle import lifecycle
    from flows.promote import approve, promote, rollback
    from flows.score import score_batch
    from flows.traffic import traffic

    out = [
        lifecycle.to_deployment(DEPLOYMENT, description="Ingest, train and package once"),
        ingest.to_deployment(DEPLOYMENT, description="Accept a batch as a new data version"),
        promote.to_deployment(DEPLOYMENT, description="Gate a version and promote it"),
        approve.to_deployment(DEPLOYMENT, description="Approve a version waiting in staging"),
        rollback.to_deployment(DEPLOYMENT, description="Put the previous production back"),
        traffic.to_deployment(DEPLOYMENT, description="Challenger and traffic policy"),
        score_batch.to_deployment(DEPLOYMENT, description="Score a file of entity ids"),
    ]
    out += monitoring_deployments(params)
    return out


def monitoring_deployments(params: Any) -> list[Any]:
    """Monitor on an interval, retrain nightly and on events, review canaries."""
    try:
        from flows.monitor import monitoring_deployments as build
    except ImportError:  # monitoring not installed in this checkout
        return []
    return list(build(params, DEPLOYMENT))


def serve_all(only: list[str] | None = None) -> None:
    """Run every deployment (or those of the flows named in ``only``) in this process until
    interrupted (``loopline deployments``)."""
    from prefect import serve

    from flows.common import project

    params, _ = project(None)
    chosen = [d for d in deployments(params) if not only or d.flow_name in only]
    if not chosen:
        known = sorted(d.flow_name for d in deployments(params))
        raise ValueError(f"no deployment of flows {only}; known flows: {', '.join(known)}")
    serve(*chosen, print_starting_message=True)


if __name__ == "__main__":
    serve_all()
