"""Feast store profiles: where a project's features live, chosen by configuration alone.

- ``local`` (the default): ``feature_repo/feature_store.yaml`` as it is: a SQLite online
  store and the DuckDB-based offline store, both in the state folder.
- ``postgres``: the offline and the online store in one PostgreSQL database. The sources
  are tables there (``loopline.feast_pg_sources`` loads the parquet files into them).
- ``redis``: the online store in Redis; the offline store stays local.

``features.store`` in params.yaml picks one, ``LOOPLINE_FEAST_STORE`` overrides it. Where
the servers are comes from the environment only (DESIGN: params say what, the environment
says where), so no address or secret is ever written into the repo or the state folder: the
Feast configuration of a shared profile is built in memory.

Two projects on one server never mix: each gets a namespace (``LOOPLINE_FEAST_NAMESPACE``,
by default the project folder's name plus a hash of its state folder, whose Feast registry
the server's data belongs to). It is the Feast project name, which Redis keys and the online
tables carry, and the PostgreSQL schema everything of the project lives in.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from loopline.config import ConfigError, load_params
from loopline.errors import LooplineError
from loopline.settings import Paths

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

StoreName = Literal["local", "postgres", "redis"]
STORE_ENV = "LOOPLINE_FEAST_STORE"
NAMESPACE_ENV = "LOOPLINE_FEAST_NAMESPACE"
# Long enough for a loaded server across a network, short enough that a wrong address is
# reported in seconds: neither psycopg nor redis-py gives up on a silent host by default.
CONNECT_TIMEOUT_SECONDS = 3
# A PostgreSQL identifier holds 63 bytes, and Feast names online tables "<project>_<view>".
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class FeatureStoreUnreachable(LooplineError):
    """A shared Feast store did not answer; the message names the store and its address."""


def _env(names: tuple[str, ...], default: str) -> tuple[str, str]:
    """The first of ``names`` that is set, and which one it was (for error messages)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value, name
    return default, names[0]


def _port(names: tuple[str, ...], default: int) -> int:
    value, name = _env(names, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}: a port number is 1-65535, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server, from ``LOOPLINE_PG_*`` or libpq's own ``PG*`` variables."""

    host: str
    port: int
    database: str
    user: str
    password: str
    sslmode: str

    @classmethod
    def from_env(cls) -> PostgresServer:
        return cls(
            host=_env(("LOOPLINE_PG_HOST", "PGHOST"), "127.0.0.1")[0],
            port=_port(("LOOPLINE_PG_PORT", "PGPORT"), 5432),
            database=_env(("LOOPLINE_PG_DATABASE", "PGDATABASE"), "postgres")[0],
            user=_env(("LOOPLINE_PG_USER", "PGUSER"), "postgres")[0],
            password=_env(("LOOPLINE_PG_PASSWORD", "PGPASSWORD"), "")[0],
            # Feast's own default, "require", refuses the usual server without TLS.
            sslmode=_env(("LOOPLINE_PG_SSLMODE", "PGSSLMODE"), "prefer")[0],
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"

    def connect(self) -> Any:
        """A psycopg connection that gives up after CONNECT_TIMEOUT_SECONDS."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=self.password,
            sslmode=self.sslmode,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )

    def feast(self, schema: str) -> dict[str, Any]:
        # One connection per store (Feast's "singleton"): its reads run in autocommit, and
        # its pool leaks a connection whenever a read raises.
        return {
            "type": "postgres",
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "db_schema": schema,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
        }


@dataclass(frozen=True)
class RedisServer:
    """A Redis server, from ``LOOPLINE_REDIS_*``; ``db`` is the database number (0-15)."""

    host: str
    port: int
    db: int
    password: str

    @classmethod
    def from_env(cls) -> RedisServer:
        db, name = _env(("LOOPLINE_REDIS_DB",), "0")
        if not db.isdigit():
            raise ConfigError(f"{name}: a Redis database number, got {db!r}")
        return cls(
            host=_env(("LOOPLINE_REDIS_HOST",), "127.0.0.1")[0],
            port=_port(("LOOPLINE_REDIS_PORT",), 6379),
            db=int(db),
            password=_env(("LOOPLINE_REDIS_PASSWORD",), "")[0],
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.db}"

    def client(self) -> Any:
        """A redis-py client that asks once: by default it retries with backoff (~7 s)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            password=self.password or None,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )

    def feast(self) -> dict[str, Any]:
        # Feast splits this string on commas: host:port, then key=value options.
        options = [f"{self.host}:{self.port}", f"db={self.db}"]
        options.append(f"socket_connect_timeout={CONNECT_TIMEOUT_SECONDS}")
        if self.password:
            options.append(f"password={self.password}")
        return {"type": "redis", "connection_string": ",".join(options)}


@dataclass(frozen=True)
class Profile:
    """The chosen stores; ``postgres``/``redis`` are set when the profile uses them."""

    name: StoreName
    namespace: str
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None

    @property
    def shared(self) -> bool:
        return self.name != "local"


def default_namespace(paths: Paths) -> str:
    folder = re.sub(r"[^a-z0-9_]+", "_", paths.project.name.lower()).strip("_")[:24]
    digest = hashlib.sha1(str(paths.state).encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{folder or 'project'}_{digest}" if folder[:1].isalpha() else f"p_{digest}"


def selected(paths: Paths) -> Profile:
    """The profile params.yaml (or LOOPLINE_FEAST_STORE) names, its servers from the env."""
    override = os.environ.get(STORE_ENV)
    if override:
        if override not in get_args(StoreName):
            choices = ", ".join(get_args(StoreName))
            raise ConfigError(f"{STORE_ENV}: must be one of {choices}, got {override!r}")
        name: StoreName = override  # type: ignore[assignment]
    else:
        name = _params_store(paths.params_file)
    namespace = os.environ.get(NAMESPACE_ENV) or default_namespace(paths)
    if not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"{NAMESPACE_ENV}: lower-case letters, digits and _, starting with a letter, "
            f"at most 40 characters; got {namespace!r}"
        )
    if name == "postgres":
        return Profile(name, namespace, postgres=PostgresServer.from_env())
    if name == "redis":
        return Profile(name, namespace, redis=RedisServer.from_env())
    return Profile(name, namespace)


_read: dict[tuple[Path, int], StoreName] = {}


def _params_store(file: Path) -> StoreName:
    # Feast stores are built often (each step, each scoring call): parse params.yaml once
    # per version of the file, not per store.
    key = (file, file.stat().st_mtime_ns if file.is_file() else 0)
    if key not in _read:
        _read[key] = load_params(file).features.store
    return _read[key]


def check(profile: Profile) -> None:
    """Raise :class:`FeatureStoreUnreachable` unless every server of the profile answers.

    Feast itself would wait for the operating system's TCP timeout on a silent host (minutes)
    and then fail with a driver's traceback; this asks first, briefly, before anything is
    written anywhere.
    """
    if profile.postgres is not None:
        server = profile.postgres
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
        except Exception as error:
            raise FeatureStoreUnreachable(
                f"Feast offline and online store (PostgreSQL) at {server.address} as user "
                f"{server.user!r} did not accept a connection: {_first_line(error)}. Start it "
                "(scripts/ensure_postgres.sh) or point LOOPLINE_PG_HOST, LOOPLINE_PG_PORT, "
                "LOOPLINE_PG_DATABASE, LOOPLINE_PG_USER and LOOPLINE_PG_PASSWORD at it, or "
                f"set {STORE_ENV}=local"
            ) from error
    if profile.redis is not None:
        server_r = profile.redis
        try:
            with server_r.client() as client:
                client.ping()
        except Exception as error:
            raise FeatureStoreUnreachable(
                f"Feast online store (Redis) at {server_r.address} did not accept a connection: "
                f"{_first_line(error)}. Start it (scripts/ensure_redis.sh) or point "
                "LOOPLINE_REDIS_HOST, LOOPLINE_REDIS_PORT, LOOPLINE_REDIS_DB and "
                f"LOOPLINE_REDIS_PASSWORD at it, or set {STORE_ENV}=local"
            ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")


def repo_config(profile: Profile, base: Path, paths: Paths) -> RepoConfig:
    """Feast's configuration for a shared profile, from the project's (or a run's) yaml.

    In a run's workspace the registry and online store stay the run's own (``base`` is the
    run's yaml): a run reaches the shared online store only when it publishes. The offline
    store is the profile's in both, so a run's training reads the tables of its own sources.
    """
    import yaml
    from feast.repo_config import RepoConfig

    check(profile)
    raw = yaml.safe_load(os.path.expandvars(base.read_text()))
    raw["project"] = profile.namespace
    if profile.postgres is not None:
        raw["offline_store"] = profile.postgres.feast(profile.namespace)
    if paths.workspace is None:
        if profile.postgres is not None:
            raw["online_store"] = profile.postgres.feast(profile.namespace)
        elif profile.redis is not None:
            raw["online_store"] = profile.redis.feast()
    config = RepoConfig(**raw)
    config.repo_path = paths.feature_repo
    return config
