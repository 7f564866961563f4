"""Keeping the service in step with the registry, without restarts or dropped requests.

A daemon thread polls the registry's change counter (one indexed read). When it moves,
the thread loads any model it has not loaded yet, builds a new routing table and hands
it over in one assignment. Requests never wait on any of this; the pick-up delay is at
most one poll interval plus the time to load a new model file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loopline.serving.router import Arm, RoutingTable

log = logging.getLogger(__name__)
Loader = Callable[[str], Any]


class ModelCache:
    """Loaded pipelines by version; a version is loaded once and kept while it may serve."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._arms: dict[str, Arm] = {}

    def arm(self, version: str) -> Arm:
        if version not in self._arms:
            self._arms[version] = Arm(version, self._load(version))
        return self._arms[version]

    def keep_only(self, versions: set[str]) -> None:
        for version in set(self._arms) - versions:
            del self._arms[version]


def read_table(
    registry: Any, model_name: str, cache: ModelCache, unpromoted: str | None = None
) -> RoutingTable:
    """The routing table the registry describes now.

    With nothing in production the table has no champion and no challenger; it holds
    ``unpromoted`` (the Bento's own version, when ``serving.allow_unpromoted`` is on) or
    nothing at all, and then the service refuses to predict until a version is promoted.
    """
    counter = registry.change_counter(model_name)
    production = registry.production(model_name)
    policy = registry.policy(model_name)
    if production is None:
        candidate = cache.arm(unpromoted) if unpromoted is not None else None
        cache.keep_only({candidate.version} if candidate else set())
        return RoutingTable(None, None, policy.kind, policy.challenger_share, counter, candidate)
    challenger = registry.challenger(model_name)
    champion = cache.arm(production.version)
    contender = cache.arm(challenger.version) if challenger else None
    cache.keep_only({champion.version} | ({contender.version} if contender else set()))
    return RoutingTable(champion, contender, policy.kind, policy.challenger_share, counter)


class RegistryWatcher:
    """Polls the registry and publishes a new routing table whenever it changes."""

    def __init__(
        self,
        registry: Any,
        model_name: str,
        cache: ModelCache,
        unpromoted: str | None,
        publish: Callable[[RoutingTable], None],
        interval: float = 0.5,
    ) -> None:
        self.registry, self.model_name, self.cache = registry, model_name, cache
        self.unpromoted, self.publish, self.interval = unpromoted, publish, interval
        self.seen = -1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="registry-watcher", daemon=True)

    def refresh(self, force: bool = False) -> bool:
        """Re-read the registry if it changed (or when forced); True when a new table was set."""
        with self._lock:
            counter = self.registry.change_counter(self.model_name)
            if counter == self.seen and not force:
                return False
            started = time.perf_counter()
            table = read_table(self.registry, self.model_name, self.cache, self.unpromoted)
            self.publish(table)
            self.seen = table.counter
            log.info(
                "routing now %s (%.0f ms)", table.describe(), 1e3 * (time.perf_counter() - started)
            )
            return True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # keep serving the last good table; say why once per failure
                log.exception("registry refresh failed; still serving the previous table")
