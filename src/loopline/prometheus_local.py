"""A Prometheus on this machine for ``loopline up``: Debian's binary, scraping the service.

It runs the project's own ``deploy/prometheus/prometheus.yml`` with the real address of
the service put in, its rules loaded from where they are (so what runs here is what the
tests check), its data under the state folder and its web UI and API on 127.0.0.1. The
binary is optional: without it (``scripts/ensure_promtool.sh`` installs it) ``up`` says
so and goes on.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from loopline.platform import HOST, Service, start, wait_ready
from loopline.settings import Paths

PROMETHEUS_PORT = 9090
# The Streamlit dashboard links here; Grafana's data source reads the same variable.
URL_ENV = "LOOPLINE_PROMETHEUS_URL"
SOURCE = Path("deploy") / "prometheus" / "prometheus.yml"
JOB = "loopline-serving"


def binary() -> str | None:
    """The ``prometheus`` executable on PATH, if any."""
    return shutil.which("prometheus")


def state_folder(paths: Paths) -> Path:
    return paths.state / "prometheus"


def write_config(
    paths: Paths,
    serving_url: str,
    *,
    source: Path | None = None,
    certfile: Path | None = None,
    interval: str | None = None,
    extra_rules: Sequence[Path] = (),
) -> Path:
    """The deploy config with ``serving_url`` as the one target, written under the state folder.

    ``interval`` replaces the scrape and evaluation intervals (tests use a second);
    ``extra_rules`` are rule files loaded beside the project's own. With ``certfile`` (the
    service's HTTPS certificate) Prometheus verifies the service against it.
    """
    source = source or paths.project / SOURCE
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    jobs = [job for job in config.get("scrape_configs", []) if job.get("job_name") == JOB]
    if not jobs:
        raise ValueError(f"{source}: no scrape job named {JOB!r}")
    address = urlsplit(serving_url)
    job = jobs[0]
    job["scheme"] = address.scheme
    job["static_configs"] = [{"targets": [address.netloc]}]
    if certfile is not None:
        job["tls_config"] = {"ca_file": str(certfile), "server_name": _server_name(certfile)}
    if interval is not None:
        config.setdefault("global", {}).update(
            scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
        )
    rules = [str((source.parent / r).resolve()) for r in config.get("rule_files", [])]
    config["rule_files"] = rules + [str(Path(r).resolve()) for r in extra_rules]
    folder = state_folder(paths)
    folder.mkdir(parents=True, exist_ok=True)
    written = folder / "prometheus.yml"
    header = f"# Written by loopline from {source}; edit that file instead.\n"
    written.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return written


def start_prometheus(
    paths: Paths,
    port: int,
    serving_url: str,
    *,
    source: Path | None = None,
    certfile: Path | None = None,
    interval: str | None = None,
    extra_rules: Sequence[Path] = (),
) -> Service:
    """Prometheus on 127.0.0.1:``port`` scraping ``serving_url`` (see :func:`write_config`)."""
    executable = binary()
    if executable is None:
        raise FileNotFoundError("no prometheus on PATH: bash scripts/ensure_promtool.sh (as root)")
    config = write_config(
        paths,
        serving_url,
        source=source,
        certfile=certfile,
        interval=interval,
        extra_rules=extra_rules,
    )
    command = [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={state_folder(paths) / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--storage.tsdb.retention.time=15d",
    ]
    return start("prometheus", command, f"http://{HOST}:{port}", paths, {})


def start_if_present(
    paths: Paths, serving: Service, say: Callable[[str], Any], port: int = PROMETHEUS_PORT
) -> Service | None:
    """``up``'s Prometheus: started and ready, or None with a note saying why not."""
    source = paths.project / SOURCE
    if binary() is None:
        say("Prometheus off: no prometheus binary (bash scripts/ensure_promtool.sh, as root)")
        return None
    if not source.is_file():
        say(f"Prometheus off: this project has no {SOURCE}")
        return None
    if not _free(port):
        say(f"Prometheus off: {HOST}:{port} is taken (another Prometheus?)")
        return None
    prometheus = start_prometheus(paths, port, serving.url, certfile=serving.certfile)
    try:
        wait_ready(prometheus, "/-/ready", timeout=60)
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _server_name(certfile: Path) -> str:
    # The service is scraped at 127.0.0.1, its certificate names the host clients use.
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = names.value.get_values_for_type(x509.DNSName)
        if dns:
            return str(dns[0])
    except x509.ExtensionNotFound:
        pass
    common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(common[0].value) if common else HOST
