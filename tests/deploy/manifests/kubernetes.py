"""The Kubernetes checker: one rendered overlay against the code."""

from __future__ import annotations

from typing import Any

from tests.deploy.manifests.checker_base import _by_kind, workloads
from tests.deploy.manifests.common import DASHBOARD, PREFECT, SERVICE, WORKER, Problem
from tests.deploy.manifests.pod_checks import PodChecks
from tests.deploy.manifests.rendering import rendered
from tests.deploy.manifests.service_checks import ServiceChecks


class KubernetesChecker(PodChecks, ServiceChecks):
    """Compares one rendered overlay with the code; ``problems`` lists every mismatch."""

    def check(self) -> list[Problem]:
        self._check()
        return list(dict.fromkeys(self.problems))

    def _check(self) -> None:
        self.configmaps = _by_kind(self.objects, "ConfigMap")
        self._no_inline_secrets()
        all_workloads = list(workloads(self.objects))
        if self.job is not None:
            all_workloads += list(workloads([self.job]))
        names = {w.name for w in all_workloads}
        for expected in (SERVICE, DASHBOARD, PREFECT, WORKER):
            if expected not in names:
                self.fail(
                    "Deployment",
                    expected,
                    (),
                    "missing: every process Loopline runs has a workload",
                )
        for workload in all_workloads:
            self._pod(workload)
        self._service_contract(all_workloads)
        self._ports_and_probes(all_workloads)
        self._services_and_ingress(all_workloads)
        self._network_policies()
        self._params()


def check_overlay(overlay: str, **kwargs: Any) -> list[Problem]:
    return KubernetesChecker(overlay, rendered(overlay), **kwargs).check()
