"""A fast online read of a feature service, value for value what Feast's own call returns.

For 1,000 customers Feast's ``get_online_features(...).to_dict()`` spends 100-250 ms in Python
(per-row timestamps, response protos, per-value conversion). :class:`OnlineReader` reads
each feature view's SQLite table with one query, decodes the values with protobuf and runs
each on-demand view's own ``transform_dict`` on the inputs Feast would pass it. It follows
Feast 0.67's read path step by step, starting from Feast's own resolution of the request
(``feast.utils._get_cached_request_context``), so key order (set-ordered per process in
Feast), types and None-for-missing are Feast's. Whatever it cannot follow exactly goes to
Feast's call itself: slower, never different. Like Feast's SQLite read it applies no ttl
(Feast 0.67 checks ttl only for precomputed vectors, and ``to_dict`` ignores statuses).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.request import pathname2url

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, OnDemandFeatureView

CHUNK = 900  # ids per query: under SQLite's oldest default limit of 999 variables
INT64 = range(-(2**63), 2**63)
PLAIN = {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"}
PLAIN_TYPES = {"DOUBLE", "FLOAT", "INT64", "INT32", "STRING", "BOOL"}  # not UUIDs, say


@dataclass(frozen=True)
class _Table:
    name: str  # the SQLite table, quoted
    features: list[str]  # requested, in Feast's order
    types: list[Any]  # the ValueType ``to_dict`` converts each with
    plain: list[bool]  # whether a plain value converts to itself


@dataclass(frozen=True)
class _OnDemand:
    view: OnDemandFeatureView
    excluded: frozenset[str]  # response columns Feast keeps from the transformation
    outputs: frozenset[str]  # the features of it the service asks for


@dataclass(frozen=True)
class _Plan:
    join_key: str
    tables: list[_Table]
    on_demand: list[_OnDemand]
    keep: frozenset[str]


class OnlineReader:
    """``store.get_online_features(features=service, entity_rows=...).to_dict()``, but fast.

    ``fast`` says whether reads take the direct SQLite path; ``reason`` why not.
    """

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
        self.store = store
        self.service = service
        self.entity = _join_key(store, service)
        self._local = threading.local()
        self._cached_plan: tuple[Any, _Plan | str] | None = None
        self._path = Path()
        self._keys = _key_encoder(self.entity, store.config.entity_key_serialization_version)
        self.reason = self._unsupported()
        self.fast = self.reason is None

    def read(self, ids: list[int]) -> dict[str, list[Any]]:
        """Exactly what Feast's call returns for ``[{entity: i} for i in ids]``."""
        if not self.fast or not ids or not all(type(i) is int and i in INT64 for i in ids):
            return self._feast(ids)  # an empty list: Feast raises, and so does this
        plan = self._plan_now()
        if isinstance(plan, str):
            return self._feast(ids)
        try:
            return self._read(plan, ids)
        except (sqlite3.Error, FileNotFoundError):
            return self._feast(ids)  # no file or no table yet: whatever Feast makes of it

    def _feast(self, ids: list[int]) -> dict[str, list[Any]]:
        rows = [{self.entity: i} for i in ids]
        out: dict[str, list[Any]] = self.store.get_online_features(
            features=self.service, entity_rows=rows
        ).to_dict()
        return out

    def _unsupported(self) -> str | None:
        from feast import utils
        from feast.infra.online_stores.sqlite import SqliteOnlineStore
        from feast.infra.passthrough_provider import PassthroughProvider

        config = self.store.config
        provider = self.store._get_provider()
        if type(provider).get_online_features is not PassthroughProvider.get_online_features:
            return f"provider {type(provider).__name__} reads online features its own way"
        if type(provider.online_store) is not SqliteOnlineStore:
            return f"online store {config.online_store.type!r} is not Feast's SQLite store"
        if config.registry.enable_online_feature_view_versioning:
            return "online feature view versioning is enabled"
        if getattr(self.service, "precompute_online", False):
            return "the feature service reads precomputed vectors"
        if not hasattr(utils, "_get_cached_request_context"):
            return "this Feast version resolves requests differently from 0.67"
        self._path = Path(SqliteOnlineStore._get_db_path(config))
        plan = self._plan_now()
        return plan if isinstance(plan, str) else None

    def _plan_now(self) -> _Plan | str:
        """The plan for Feast's current resolution of the service (re-made when Feast's is)."""
        from feast import utils

        context = utils._get_cached_request_context(
            self.store.registry, self.store.project, self.service, False
        )
        cached = self._cached_plan
        if cached is not None and cached[0] is context:
            return cached[1]
        plan = _plan(context, self.store.project)
        self._cached_plan = (context, plan)
        return plan

    def _read(self, plan: _Plan, ids: list[int]) -> dict[str, list[Any]]:
        unique = list(dict.fromkeys(ids))  # Feast reads each entity once, too
        keys = self._keys(unique)
        position = {i: n for n, i in enumerate(unique)}
        rows = [position[i] for i in ids]
        columns: list[tuple[str, list[Any]]] = [(plan.join_key, list(ids))]
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot for every table
        try:
            for table in plan.tables:
                values = _read_table(conn, table, keys)
                columns += [
                    (f, [v[r] for r in rows]) for f, v in zip(table.features, values, strict=True)
                ]
        finally:
            conn.execute("COMMIT")
        if plan.on_demand:
            base = dict(columns)  # Feast transforms from one dict of the stored features
            for odfv in plan.on_demand:
                columns += _transform(odfv, base)
        return {name: values for name, values in columns if name in plan.keep}

    def _connection(self) -> sqlite3.Connection:
        """This thread's read-only connection, reopened when the database file is replaced."""
        stat = os.stat(self._path)
        identity = (stat.st_dev, stat.st_ino)
        local = self._local
        if getattr(local, "identity", None) != identity:
            if getattr(local, "conn", None) is not None:
                local.conn.close()
            uri = f"file:{pathname2url(str(self._path))}?mode=ro"
            local.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            local.identity = identity
        conn: sqlite3.Connection = local.conn
        return conn


def _join_key(store: FeatureStore, service: FeatureService) -> str:
    """The one join key of the service's feature views (what ``entity_rows`` are keyed by)."""
    views = {v.name: v for v in store.list_feature_views(allow_cache=True)}
    keys = set()
    for p in (p for p in service.feature_view_projections if p.name in views):
        for entity in views[p.name].entities:
            key = store.get_entity(entity, allow_registry_cache=True).join_key
            keys.add(p.join_key_map.get(key, key))
    if len(keys) != 1:
        raise ValueError(f"feature service {service.name!r} has join keys {sorted(keys)}, not one")
    return keys.pop()


def _key_encoder(join_key: str, version: int) -> Callable[[list[int]], list[bytes]]:
    """Feast's ``serialize_entity_key`` for int ids: a constant prefix and the id as int64."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    def feast(ids: list[int]) -> list[bytes]:
        protos = (EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=i)]) for i in ids)
        return [bytes(serialize_entity_key(k, version)) for k in protos]

    samples = [0, 1, -1, 12345, 2**63 - 1, -(2**63)]
    prefix = feast([0])[0][:-8]
    if feast(samples) != [prefix + struct.pack("<q", i) for i in samples]:
        return feast  # another layout: Feast's own, one id at a time
    return lambda ids: [prefix + struct.pack("<q", i) for i in ids]


def _plan(context: tuple[Any, ...], project: str) -> _Plan | str:
    """How to follow Feast's read for this resolved request, or why it cannot be followed."""
    from feast import FeatureView
    from feast.infra.online_stores.sqlite import _quote_id, _table_id
    from feast.utils import _parse_feature_ref

    refs, odfvs, _, entity_types, join_keys, grouped, result_names, request_data, entityless = (
        context
    )
    keys = {k for k in join_keys if isinstance(k, str)} - {"__dummy_id"}  # and Entity objects
    if entityless or request_data or len(keys) != 1:
        return "the service needs request data, no entity or several join keys"
    (join_key,) = keys
    if getattr(entity_types.get(join_key), "name", None) != "INT64":
        return f"join key {join_key!r} is not an INT64"
    tables, names = [], [join_key]
    for view, requested in grouped:
        if type(view) is not FeatureView or view.projection.name_alias:
            return f"{view.name!r} is not a plain batch feature view without an alias"
        if view.projection.join_key_map or view.join_keys != [join_key]:
            return f"{view.name!r} maps or adds join keys"
        dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
        types = [dtypes[n] for n in requested]
        plain = [t.name in PLAIN_TYPES for t in types]
        tables.append(_Table(_quote_id(_table_id(project, view)), list(requested), types, plain))
        names += requested
    if len(set(names)) != len(names):
        return "two feature views share a feature name"
    by_view: dict[str, set[str]] = {}
    for ref in refs:
        view_name, _, feature = _parse_feature_ref(ref)
        by_view.setdefault(view_name, set()).add(feature)
    odfv_by_name = {o.name: o for o in odfvs}
    on_demand = []
    for view_name in (v for v in by_view if v in odfv_by_name):  # Feast's order
        odfv = odfv_by_name[view_name]
        alias, requests = odfv.projection.name_alias, odfv.source_request_sources
        if odfv.mode != "python" or odfv.aggregations or odfv.write_to_online_store or alias:
            return f"on-demand view {odfv.name!r} is not a plain python-mode transformation"
        if requests:
            return f"on-demand view {odfv.name!r} needs request data"
        on_demand.append(
            _OnDemand(odfv, _excluded(odfv, odfvs, refs), frozenset(by_view[view_name]))
        )
    return _Plan(join_key, tables, on_demand, frozenset(result_names) | {join_key})


def _excluded(odfv: Any, odfvs: list[Any], refs: list[str]) -> frozenset[str]:
    """Columns Feast keeps from a transformation: other views' features (feast#6158)."""
    from feast.utils import _parse_feature_ref

    declared = {p.name for p in odfv.source_feature_view_projections.values()}
    on_demand = {o.name for o in odfvs}
    out: set[str] = set()
    for ref in refs:
        view, _, feature = _parse_feature_ref(ref)
        if view not in on_demand and view not in declared:
            out |= {feature, f"{view}__{feature}"}
    for other in odfvs:
        for p in other.source_feature_view_projections.values():
            if p.name not in declared:
                out |= {f.name for f in p.features} | {f"{p.name}__{f.name}" for f in p.features}
    return frozenset(out)


def _read_table(conn: sqlite3.Connection, table: _Table, keys: list[bytes]) -> list[list[Any]]:
    """Per requested feature, its value for each key as ``to_dict`` gives it (None: none)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    index = {name: n for n, name in enumerate(table.features)}
    width = len(table.features)
    found: dict[bytes, list[Any]] = {}
    parse = Value.FromString
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        sql = (
            # table: Feast's own quoted id; values are bound
            f"SELECT entity_key, feature_name, value FROM {table.name} "  # nosec B608
            f"WHERE entity_key IN ({','.join('?' * len(chunk))})"
        )
        for key, name, blob in conn.execute(sql, chunk):
            n = index.get(name)
            if n is None:
                continue
            value = parse(blob)
            kind = value.WhichOneof("val")
            if kind is None:
                decoded = None
            elif kind in PLAIN and table.plain[n]:
                decoded = getattr(value, kind)  # what feast_value_type_to_python_type returns
            else:
                decoded = feast_value_type_to_python_type(value, table.types[n])
            row = found.get(key)
            if row is None:
                row = found[key] = [None] * width
            row[n] = decoded
    missing = [None] * width
    rows = [found.get(k, missing) for k in keys]
    return [list(column) for column in zip(*rows, strict=True)]


def _transform(odfv: _OnDemand, base: dict[str, list[Any]]) -> list[tuple[str, list[Any]]]:
    """The view's outputs as Feast's response holds them, after its round trip through protos."""
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
    from feast.types import ComplexFeastType, PrimitiveFeastType
    from feast.value_type import ValueType

    view = odfv.view
    inputs = {k: list(v) for k, v in base.items() if k not in odfv.excluded}
    transformed = view.transform_dict(inputs)
    schema = {f.name: f.dtype for f in view.schema}
    out = []
    for name in [k for k in transformed if k in odfv.outputs]:
        values = transformed[name]
        values = values if isinstance(values, list) else [values]
        dtype = schema.get(name)
        typed = isinstance(dtype, ComplexFeastType | PrimitiveFeastType)
        kind = dtype.to_value_type() if typed else ValueType.UNKNOWN  # type: ignore[union-attr]
        if kind == ValueType.DOUBLE and all(type(v) is float and v == v for v in values):
            out.append((name, list(values)))  # the round trip keeps these (NaN would be None)
        else:
            protos = python_values_to_proto_values(values, kind)
            out.append((name, [feast_value_type_to_python_type(p) for p in protos]))
    return out
