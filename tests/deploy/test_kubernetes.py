"""deploy/k8s, offline: every overlay renders, validates strictly against the schemas of the
supported Kubernetes versions, passes checkov, and agrees with the code; a drifted copy
fails with a message naming the file, the object and the field."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loopline import platform
from tests.deploy import manifests as m

NAMESPACED = {
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Ingress",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
}


def schema_errors(objects: list[dict[str, Any]], version: str) -> list[str]:
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema: {exc}")
    return errors


def deployment_of(overlay: str, name: str) -> dict[str, Any]:
    return next(
        o
        for o in m.rendered(overlay)
        if o["kind"] == "Deployment" and o["metadata"]["name"] == name
    )


@pytest.mark.parametrize("overlay", m.OVERLAYS)
def test_every_overlay_renders_into_the_namespace(overlay: str) -> None:
    objects = m.rendered(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy", "Ingress", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    for obj in objects:
        if obj["kind"] in NAMESPACED:
            assert obj["metadata"].get("namespace") == "loopline", obj["metadata"]["name"]


@pytest.mark.parametrize("version", m.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", m.OVERLAYS)
def test_every_object_validates_strictly(overlay: str, version: str) -> None:
    assert schema_errors(list(m.rendered(overlay)), version) == []


@pytest.mark.parametrize("version", m.KUBERNETES_VERSIONS)
def test_the_flow_run_job_validates_strictly(version: str) -> None:
    job = m.flow_run_job(json.loads(m.JOB_TEMPLATE.read_text()))
    assert schema_errors([job], version) == []


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = deployment_of("production", m.SERVICE)
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    errors = schema_errors([broken], m.KUBERNETES_VERSIONS[0])
    assert errors and "Deployment/loopline-service" in errors[0]
    assert "livenessprobe" in errors[0]


@pytest.mark.parametrize("overlay", m.OVERLAYS)
def test_manifests_agree_with_the_code(overlay: str) -> None:
    assert m.report(m.check_overlay(overlay)) == ""


def test_the_service_is_what_make_up_serves() -> None:
    for overlay in m.OVERLAYS:
        service = deployment_of(overlay, m.SERVICE)
        container = service["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == platform.SERVING_PORT
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"/livez", "/readyz", "/metrics"} <= set(m.bentoml_endpoints())
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"]
        pod = service["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == m.LOOPLINE_UID


def test_the_worker_pulls_the_pool_the_deployments_use() -> None:
    worker = deployment_of("production", m.WORKER)
    args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pool") + 1] == m.KUBERNETES_POOL
    assert args[args.index("--type") + 1] == "kubernetes"
    production_deployments = m.REPO / "deploy" / "prefect" / "kubernetes.yaml"
    if production_deployments.is_file():  # the work-pool deployments (prefect deploy)
        assert m.prefect_yaml_pool(production_deployments) == m.KUBERNETES_POOL
    assert m.prefect_yaml_pool(m.REPO / "prefect.yaml") == m.PROCESS_POOL
    # The monitor's schedule is Prefect's: no CronJob duplicates it.
    assert not [o for o in m.rendered("production") if o["kind"] == "CronJob"]


def test_the_job_template_only_names_its_own_variables() -> None:
    template = json.loads(m.JOB_TEMPLATE.read_text())
    used = set(re.findall(r"\{\{ *(\w+) *\}\}", json.dumps(template["job_configuration"])))
    assert used <= set(template["variables"]["properties"])
    assert template["variables"]["properties"]["namespace"]["default"] == "loopline"


def test_checkov_passes_with_a_reason_for_every_skip() -> None:
    found, summary = m.checkov_results()
    failed = [str(f) for f in found["failed"] if f.framework == "kubernetes"]
    assert failed == [], summary
    for finding in found["skipped"]:
        assert finding.justification and len(finding.justification) > 20, str(finding)


# --- bad input: a copy of deploy/k8s, mutated --------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A scratch repository holding deploy/k8s and the params.yaml it reads."""
    shutil.copytree(m.K8S, tmp_path / "deploy" / "k8s")
    shutil.copy(m.REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1))


def problems(root: Path, overlay: str) -> list[str]:
    k8s = root / "deploy" / "k8s"
    objects = m.render(k8s / "overlays" / overlay)
    found = m.KubernetesChecker(overlay, objects, k8s=k8s, root=root).check()
    return [str(p) for p in found]


def test_a_missing_secret_reference_names_file_object_and_field(copy: Path) -> None:
    patch = copy / "deploy/k8s/overlays/production/service.yaml"
    edit(
        patch,
        """            - name: LOOPLINE_REDIS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: loopline-feast
                  key: LOOPLINE_REDIS_PASSWORD
""",
        "",
    )
    found = problems(copy, "production")
    assert len(found) == 1, found
    assert found[0].startswith("deploy/k8s/overlays/production/service.yaml: ")
    assert "Deployment/loopline-service" in found[0]
    assert "spec.template.spec.containers[service].env" in found[0]
    assert "LOOPLINE_REDIS_PASSWORD is not referenced from a Secret" in found[0]


def test_a_secret_given_as_a_value_is_refused(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/base/kustomization.yaml",
        "      - LOOPLINE_HOME=/var/lib/loopline\n",
        "      - LOOPLINE_HOME=/var/lib/loopline\n"
        "      - LOOPLINE_REGISTRY_URL=postgresql+psycopg://u:pw@db/registry\n",
    )
    found = problems(copy, "local")
    assert any(
        p.startswith("deploy/k8s/base/kustomization.yaml: ConfigMap/loopline-env: ")
        and "data.LOOPLINE_REGISTRY_URL" in p
        and "belongs in a Secret" in p
        for p in found
    ), found


def test_an_inlined_secret_object_is_refused(copy: Path) -> None:
    overlay = copy / "deploy/k8s/overlays/local"
    (overlay / "secret.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "loopline-keys"},
                "stringData": {"LOOPLINE_PSEUDONYM_KEY": "00" * 32},
            }
        )
    )
    edit(
        overlay / "kustomization.yaml",
        "  - prefect-home.yaml\n",
        "  - prefect-home.yaml\n  - secret.yaml\n",
    )
    found = problems(copy, "local")
    assert any(
        "deploy/k8s/overlays/local/secret.yaml: Secret/loopline-keys" in p and "never inline" in p
        for p in found
    ), found


def test_a_port_that_drifts_from_the_code_is_named(copy: Path) -> None:
    edit(copy / "deploy/k8s/base/service.yaml", "containerPort: 3000", "containerPort: 3001")
    found = problems(copy, "production")
    assert any(
        p.startswith("deploy/k8s/base/service.yaml: Deployment/loopline-service: ")
        and "spec.template.spec.containers[service].ports[http].containerPort" in p
        and f"3001, but the code serves on {platform.SERVING_PORT}" in p
        for p in found
    ), found


def test_a_probe_path_that_drifts_is_named(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/base/dashboard.yaml",
        "          readinessProbe:\n            httpGet:\n              path: /_stcore/health",
        "          readinessProbe:\n            httpGet:\n              path: /healthz",
    )
    found = problems(copy, "local")
    assert any(
        "deploy/k8s/base/dashboard.yaml: Deployment/loopline-dashboard: " in p
        and "containers[dashboard].readinessProbe.httpGet.path" in p
        and "/healthz" in p
        for p in found
    ), found


def test_an_env_var_the_code_does_not_read_is_named(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/base/service.yaml",
        "- name: LOOPLINE_SERVING_WORKERS",
        "- name: LOOPLINE_SERVING_WORKER",
    )
    found = problems(copy, "production")
    assert any(
        p.startswith("deploy/k8s/base/service.yaml: Deployment/loopline-service: ")
        and "containers[service].env[LOOPLINE_SERVING_WORKER]" in p
        and "not read anywhere" in p
        for p in found
    ), found


def test_a_configmap_key_the_code_does_not_read_is_named(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/base/kustomization.yaml",
        "- PREFECT_API_URL=http://loopline-prefect:4200/api",
        "- PREFECT_API_URI=http://loopline-prefect:4200/api",
    )
    found = problems(copy, "local")
    assert any(
        p.startswith("deploy/k8s/base/kustomization.yaml: ConfigMap/loopline-env: ")
        and "data.PREFECT_API_URI" in p
        and "not a Prefect setting" in p
        for p in found
    ), found


def test_a_dashboard_open_to_other_namespaces_is_named(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/base/networkpolicies.yaml",
        """  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: ingress-nginx
          podSelector:
            matchLabels:
              app.kubernetes.io/name: ingress-nginx
      ports:
        - port: 8501""",
        """  ingress:
    - ports:
        - port: 8501""",
    )
    found = problems(copy, "production")
    assert any(
        "deploy/k8s/base/networkpolicies.yaml: NetworkPolicy/loopline-dashboard: spec.ingress.0"
        in p
        and "only the service's port" in p
        for p in found
    ), found
