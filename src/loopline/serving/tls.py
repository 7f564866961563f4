"""HTTPS for ``bentoml serve`` by configuration: which files, and how our own probes trust them."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.config import ConfigError

if TYPE_CHECKING:
    from loopline.settings import Paths

TLS_CERTFILE_ENV = "LOOPLINE_SERVING_TLS_CERTFILE"
TLS_KEYFILE_ENV = "LOOPLINE_SERVING_TLS_KEYFILE"


def trusting(certfile: Path | None) -> ssl.SSLContext | bool:
    """Verification for a probe of our own server: it must present ``certfile``'s chain.

    Not its host name: the probe asks 127.0.0.1, while the certificate names the host that
    clients use. The file's certificates are the trust anchors, a CA-issued leaf as much
    as a self-signed one (hence the partial chain).
    """
    if certfile is None:
        return True
    context = ssl.create_default_context(cafile=str(certfile))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def tls_files(paths: Paths) -> tuple[Path, Path] | None:
    """``serving.tls``'s certificate and key, or None for plain HTTP.

    ``LOOPLINE_SERVING_TLS_CERTFILE``/``_KEYFILE`` override params.yaml (a deployment's
    secret mount); relative paths are from the project folder.
    """
    from loopline.config import load_params

    tls = load_params(paths.params_file).serving.tls
    certfile = os.environ.get(TLS_CERTFILE_ENV) or tls.certfile
    keyfile = os.environ.get(TLS_KEYFILE_ENV) or tls.keyfile
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError(
            "serving.tls: set both certfile and keyfile, or neither "
            f"(or {TLS_CERTFILE_ENV} and {TLS_KEYFILE_ENV})"
        )
    files = (paths.project / certfile, paths.project / keyfile)
    for setting, file in zip(("certfile", "keyfile"), files, strict=True):
        if not file.is_file():
            raise ConfigError(f"serving.tls.{setting}: {file} is not there")
    return files
