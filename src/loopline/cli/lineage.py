"""``loopline lineage``: what a model version was made from, or which versions a dataset made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopline.cli.common import refused

if TYPE_CHECKING:
    from loopline.registry import RegistryView


def lineage(
    version: Annotated[
        str | None, typer.Argument(help="Model version (BentoML tag) to trace")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="A data version (DVC hash): list the versions trained on it"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Trace a model version: data → features → run → model → bento → deployments."""
    if (version is None) == (data is None):
        raise refused("give a model VERSION or --data HASH (one of the two)")
    # Imported here: the registry pulls in SQLAlchemy, which --help need not pay for.
    from sqlalchemy.exc import SQLAlchemyError

    from loopline import lineage as graphs
    from loopline.registry import RegistryError
    from loopline.settings import activate

    try:
        paths = activate()
    except FileNotFoundError as error:  # not inside a Loopline project
        raise refused(str(error)) from error
    try:
        with _open(paths.registry_url) as registry:
            if data is not None:
                records = graphs.versions_for_data(registry, data)
                _print_versions(data, [_version_row(r) for r in records], as_json)
                return
            assert version is not None
            graph = graphs.build_graph(registry, version)
    except RegistryError as error:
        raise refused(str(error)) from error
    except SQLAlchemyError as error:
        raise refused(
            f"cannot read the registry at {_safe(paths.registry_url)}: {error}"
        ) from error
    if as_json:
        typer.echo(json.dumps(graphs.to_json(graph), indent=2))
    else:
        typer.echo(graphs.render_text(graph))


def _open(url: str) -> RegistryView:
    from sqlalchemy.engine import make_url

    from loopline.registry import RegistryView

    sa_url = make_url(url)
    database = sa_url.database if sa_url.get_backend_name() == "sqlite" else None
    # Reading must not create an empty database file where none was.
    if database and not Path(database).is_file():
        raise refused(f"no registry yet at {url}: `loopline run` trains and registers a model")
    return RegistryView(url)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _version_row(record: Any) -> dict[str, Any]:
    return {
        "version": record.version,
        "model_name": record.model_name,
        "stage": record.stage.value,
        "aliases": list(record.aliases),
        "created_at": record.created_at.isoformat(),
        "metrics": record.metrics,
    }


def _print_versions(data_hash: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"data_hash": data_hash, "versions": rows}, indent=2))
    elif not rows:
        typer.echo(f"no model version was trained on data version {data_hash}")
    else:
        typer.echo(f"model versions trained on data version {data_hash}:")
        for row in rows:
            stage = ", ".join([row["stage"], *row["aliases"]])
            typer.echo(f"  {row['version']:<40} {stage:<24} {row['created_at'][:19]}")
