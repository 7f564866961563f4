"""The Kubernetes checker's checks across workloads: the service's contract, ports and
probes, Services and Ingresses, network policies and the params ConfigMap."""

from __future__ import annotations

import tempfile
from pathlib import Path

from loopline import platform, processes
from loopline.serving.tls import TLS_CERTFILE_ENV
from loopline.serving.workers import WORKERS_ENV
from tests.deploy.manifests.checker_base import (
    CheckerBase,
    Workload,
    _by_kind,
    _cpus,
    _port_number,
    _selects,
    container_env,
)
from tests.deploy.manifests.common import DASHBOARD, PREFECT, SERVICE, SERVICE_REF
from tests.deploy.manifests.reads import bentoml_endpoints


class ServiceChecks(CheckerBase):
    """The service's contract with the code, and how the workloads are reached."""

    # -- checks
    def _service_contract(self, all_workloads: list[Workload]) -> None:
        platform_source = Path(platform.__file__).read_text() + Path(processes.__file__).read_text()
        for w in all_workloads:
            if w.name != SERVICE:
                continue
            path = ("spec", "template", "spec", "containers", "service")
            c = next((c for c in w.pod["containers"] if c["name"] == "service"), None)
            if c is None:
                self.fail(w.kind, w.name, path[:-1], "no container named service")
                return
            command = [*c.get("command", []), *c.get("args", [])]
            if SERVICE_REF not in command or SERVICE_REF not in platform_source:
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "command"),
                    f"must serve {SERVICE_REF}, as loopline.platform.start_serving does",
                )
            cpus = _cpus(c.get("resources", {}).get("limits", {}).get("cpu"))
            env = container_env(c, self.configmaps)
            workers = env.get(WORKERS_ENV, {}).get("value")
            if workers is None or not workers.isdigit() or (cpus and int(workers) > cpus):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "env", WORKERS_ENV),
                    f"set it to at most the CPU limit ({cpus}): its default counts the node's CPUs",
                )
            annotations = w.meta.get("annotations", {})
            meta = ("spec", "template", "metadata", "annotations")
            expected = {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(platform.SERVING_PORT),
                "prometheus.io/path": "/metrics",
            }
            for key, value in expected.items():
                if annotations.get(key) != value:
                    self.fail(
                        w.kind,
                        w.name,
                        (*meta, key),
                        f"{annotations.get(key)!r}, but the service exports metrics at {value!r}"
                        if key != "prometheus.io/scrape"
                        else "must be 'true'",
                    )
            tls = TLS_CERTFILE_ENV in env
            scheme = "https" if tls else "http"
            if annotations.get("prometheus.io/scheme", "http") != scheme:
                self.fail(
                    w.kind, w.name, (*meta, "prometheus.io/scheme"), f"the service speaks {scheme}"
                )
            hpas = [
                h
                for h in _by_kind(self.objects, "HorizontalPodAutoscaler").values()
                if h["spec"]["scaleTargetRef"]["name"] == SERVICE
            ]
            if not hpas:
                self.fail(
                    "HorizontalPodAutoscaler",
                    SERVICE,
                    ("spec", "scaleTargetRef"),
                    "the service has no HorizontalPodAutoscaler",
                )
            selects = [
                p
                for p in _by_kind(self.objects, "PodDisruptionBudget").values()
                if _selects(p["spec"]["selector"].get("matchLabels", {}), w.meta)
            ]
            if not selects:
                self.fail(
                    "PodDisruptionBudget",
                    SERVICE,
                    ("spec", "selector"),
                    "no PodDisruptionBudget selects the service's pods",
                )

    def _ports_and_probes(self, all_workloads: list[Workload]) -> None:
        bentoml_paths = bentoml_endpoints()
        expected = {
            SERVICE: ("service", platform.SERVING_PORT, "/livez", "/readyz", "--port"),
            PREFECT: ("prefect", platform.PREFECT_PORT, "/api/health", None, "--port"),
            DASHBOARD: (
                "dashboard",
                platform.DASHBOARD_PORT,
                "/_stcore/health",
                "/_stcore/health",
                "--server.port",
            ),
        }
        platform_source = Path(platform.__file__).read_text() + Path(processes.__file__).read_text()
        for w in all_workloads:
            if w.name not in expected:
                continue
            name, port, live, ready, flag = expected[w.name]
            path = ("spec", "template", "spec", "containers", name)
            c = next((c for c in w.pod["containers"] if c["name"] == name), None)
            if c is None:
                self.fail(w.kind, w.name, path[:-1], f"no container named {name}")
                continue
            for entry in c.get("ports", []):
                if entry.get("containerPort") != port:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, "ports", entry.get("name", "?"), "containerPort"),
                        f"{entry.get('containerPort')}, but the code serves on {port} "
                        "(loopline.platform)",
                    )
            args = [*c.get("command", []), *c.get("args", [])]
            if flag not in args or args[args.index(flag) + 1] != str(port):
                self.fail(
                    w.kind, w.name, (*path, "args"), f"must pass {flag} {port} (loopline.platform)"
                )
            for probe, want in (
                ("livenessProbe", live),
                ("readinessProbe", ready),
                ("startupProbe", None),
            ):
                spec = c.get(probe)
                if spec is None:
                    if probe != "startupProbe":
                        self.fail(w.kind, w.name, (*path, probe), "no probe")
                    continue
                get = spec.get("httpGet", {})
                if _port_number(c, get.get("port")) != port:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "port"),
                        f"{get.get('port')}, but the code serves on {port}",
                    )
                probe_path = get.get("path")
                if want is not None and probe_path != want:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"{probe_path}, but the code's {probe} endpoint is {want}",
                    )
                if w.name == SERVICE and probe_path not in bentoml_paths:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"{probe_path} is not one of BentoML's endpoints {bentoml_paths}",
                    )
                if (
                    probe_path
                    and probe_path.startswith("/_stcore")
                    or probe_path in ("/readyz", "/api/health")
                ) and f'"{probe_path}"' not in platform_source:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"loopline.platform no longer waits on {probe_path}",
                    )

    def _services_and_ingress(self, all_workloads: list[Workload]) -> None:
        pods = {w.name: w for w in all_workloads if w.kind == "Deployment"}
        services = _by_kind(self.objects, "Service")
        for name, svc in services.items():
            selected = [
                w for w in pods.values() if _selects(svc["spec"].get("selector", {}), w.meta)
            ]
            if not selected:
                self.fail("Service", name, ("spec", "selector"), "selects no pod")
                continue
            containers = selected[0].pod["containers"]
            ports = {
                p.get("name"): p.get("containerPort")
                for c in containers
                for p in c.get("ports", [])
            }
            for entry in svc["spec"].get("ports", []):
                target = entry.get("targetPort", entry.get("port"))
                number = ports.get(target, target)
                if number not in ports.values():
                    self.fail(
                        "Service",
                        name,
                        ("spec", "ports", entry.get("name", "?"), "targetPort"),
                        f"{target} is no port of the pods it selects",
                    )
                if entry.get("port") != number:
                    self.fail(
                        "Service",
                        name,
                        ("spec", "ports", entry.get("name", "?"), "port"),
                        f"{entry.get('port')}: keep the code's port {number}",
                    )
            if svc["spec"].get("type", "ClusterIP") != "ClusterIP" and name != SERVICE:
                self.fail(
                    "Service",
                    name,
                    ("spec", "type"),
                    "only the service is exposed outside the cluster",
                )
        for name, ingress in _by_kind(self.objects, "Ingress").items():
            for rule in ingress["spec"].get("rules", []):
                for entry in rule.get("http", {}).get("paths", []):
                    backend = entry["backend"]["service"]
                    svc = services.get(backend["name"])
                    ports = [p.get("port") for p in (svc or {}).get("spec", {}).get("ports", [])]
                    if svc is None or backend["port"].get("number") not in ports:
                        self.fail(
                            "Ingress",
                            name,
                            ("spec", "rules", "backend"),
                            f"{backend['name']}:{backend['port']} is no Service port",
                        )
                    if backend["name"] == SERVICE:
                        self.fail(
                            "Ingress",
                            name,
                            ("spec", "rules", "backend"),
                            "the service is reached on its own port, not the Ingress",
                        )
            annotations = ingress["metadata"].get("annotations", {})
            if not (
                annotations.get("nginx.ingress.kubernetes.io/auth-url")
                or annotations.get("nginx.ingress.kubernetes.io/auth-secret")
            ):
                self.fail(
                    "Ingress",
                    name,
                    ("metadata", "annotations"),
                    "the dashboard and the Prefect UI need authentication at the ingress",
                )

    def _network_policies(self) -> None:
        policies = _by_kind(self.objects, "NetworkPolicy")
        deny = [
            n
            for n, p in policies.items()
            if p["spec"].get("podSelector") == {}
            and "Ingress" in p["spec"].get("policyTypes", [])
            and not p["spec"].get("ingress")
        ]
        if not deny:
            self.fail(
                "NetworkPolicy",
                "(default deny)",
                ("spec",),
                "no policy denies ingress to every pod by default",
            )
        for name, policy in policies.items():
            target = policy["spec"].get("podSelector", {}).get("matchLabels", {})
            for i, rule in enumerate(policy["spec"].get("ingress", [])):
                ports = {p.get("port") for p in rule.get("ports", [])}
                sources = rule.get("from")
                path = ("spec", "ingress", str(i))
                outside = not sources or any(
                    "ipBlock" in s or ("namespaceSelector" in s and "podSelector" not in s)
                    for s in sources
                )
                if outside and (
                    target.get("app.kubernetes.io/name") != SERVICE
                    or ports != {platform.SERVING_PORT}
                ):
                    self.fail(
                        "NetworkPolicy",
                        name,
                        path,
                        f"open to other namespaces on {sorted(ports)}: only the service's "
                        f"port {platform.SERVING_PORT} may be",
                    )

    def _params(self) -> None:
        from loopline.config import load_params

        cm = self.configmaps.get("loopline-params")
        if cm is None or "params.yaml" not in cm.get("data", {}):
            self.fail(
                "ConfigMap",
                "loopline-params",
                ("data", "params.yaml"),
                "the params ConfigMap must carry params.yaml",
            )
            return
        text = cm["data"]["params.yaml"]
        if text != (self.root / "params.yaml").read_text():
            self.fail(
                "ConfigMap",
                "loopline-params",
                ("data", "params.yaml"),
                "differs from the repository's params.yaml",
            )
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / "params.yaml"
            file.write_text(text)
            load_params(file)  # a wrong key is a clear ConfigError naming it
