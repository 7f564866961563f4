"""Migrations, the schema they build, and the promise of no work at import time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from loopline.registry import Registry
from loopline.registry.database import MIGRATIONS, VERSION_TABLE, alembic_config
from loopline.registry.schema import Base

TABLES = {
    "registry_versions",
    "registry_aliases",
    "registry_policies",
    "registry_approvals",
    "registry_history",
    "tracking_runs",
    "tracking_candidates",
    "monitoring_windows",
    "privacy_subject_keys",
    "privacy_tombstones",
    "privacy_audit",
    VERSION_TABLE,
}


def test_upgrade_reaches_head_and_is_idempotent(registry: Registry) -> None:
    registry.register("churn", "churn:a", metrics={}, lineage={}, actor="trainer")
    registry.upgrade()
    registry.upgrade()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with registry.engine.connect() as connection:
        assert set(sa.inspect(connection).get_table_names()) == TABLES
        current = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
    assert current == head
    assert [v.version for v in registry.list_versions()] == ["churn:a"]


def test_migrations_build_exactly_the_orm_schema(registry: Registry) -> None:
    with registry.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_alembic_finds_nothing_to_autogenerate_from_a_url(registry: Registry) -> None:
    command.check(alembic_config(registry.url))  # raises if models and migrations drifted


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert MIGRATIONS.parent.name == "registry"
    assert list((MIGRATIONS / "versions").glob("*.py"))


def test_import_and_construction_do_no_work(tmp_path: Path) -> None:
    database = tmp_path / "state" / "registry.db"
    script = (
        "import loopline.registry as r, sys\n"
        f"registry = r.Registry('sqlite:///{database}')\n"
        "assert 'psycopg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []
    with Registry(f"sqlite:///{database}") as registry:
        registry.upgrade()  # creates the state folder it needs, and only then
    assert database.is_file()
