"""Where a Kubernetes API server is and how to authenticate to it, for targets that PATCH resources.

Exactly one way in, said in the target's settings:
  - `api_server` + `token_env` (a bearer token, e.g. a service account's), `ca_file` optional;
  - `kubeconfig` (path; `context` or the current one): the cluster's `server`,
    `certificate-authority(-data)`, `insecure-skip-tls-verify`, the context's `namespace` and
    the user's `token` or `tokenFile`. Exec plugins, auth providers and client certificates are
    not supported (a ConfigError says so): give such targets a service-account token;
  - `in_cluster: true`: the pod's service account — KUBERNETES_SERVICE_HOST/PORT and the token,
    ca.crt and namespace under /var/run/secrets/kubernetes.io/serviceaccount.
`token_env`, when set, overrides the token of the other two. Token files are re-read at every
call: service-account tokens are rotated by the kubelet. Problems found while resolving are
ConfigErrors (at build time); a token that cannot be read at call time is AuthFailed.

TLS trust is a property of an httpx client, so a cluster with its own CA (nearly all of them)
gets a client of its own from `tls_client`, built by the target's composition function.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.credentials import secret
from adapters.errors import AuthFailed, ConfigError
from adapters.http import DEFAULT_TIMEOUT

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str | None = None  # default: the kubeconfig context's, the pod's, else "default"
    api_server: str | None = Field(default=None, pattern=r"^https?://")
    token_env: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesSettings:
        ways = [w for w, on in (("api_server", self.api_server), ("kubeconfig", self.kubeconfig)) if on]
        ways += ["in_cluster"] if self.in_cluster else []
        if len(ways) != 1:
            raise ValueError(
                "say how to reach the Kubernetes API with exactly one of api_server (with token_env),"
                f" kubeconfig or in_cluster: true (got {', '.join(ways) or 'none'})"
            )
        if self.api_server and not self.token_env:
            raise ValueError("api_server needs token_env: the variable holding a bearer token")
        return self

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,) if self.token_env else ()


@dataclass(frozen=True)
class Token:
    """Where the bearer token comes from: a variable, a file (re-read each time) or a kubeconfig."""

    variable: str | None = None
    path: Path | None = None
    value: str | None = field(default=None, repr=False)

    def read(self, env: Mapping[str, str], target: str) -> str:
        if self.variable is not None:
            return secret(env, self.variable, target)
        if self.path is not None:
            try:
                return self.path.read_text().strip()
            except OSError as error:
                raise AuthFailed(f"target {target!r}: token file {self.path}: {error.strerror}") from None
        assert self.value is not None
        return self.value


@dataclass(frozen=True)
class Cluster:
    server: str
    namespace: str
    token: Token
    ca_pem: str | None = None
    insecure: bool = False


def resolve_cluster(
    settings: KubernetesSettings, env: Mapping[str, str], service_account: Path = SERVICE_ACCOUNT
) -> Cluster:
    """The API server, namespace, CA and token source the settings point at (ConfigError if not)."""
    override = Token(variable=settings.token_env) if settings.token_env else None
    if settings.api_server:
        ca = _read(Path(settings.ca_file).expanduser(), "ca_file") if settings.ca_file else None
        assert override is not None
        namespace = settings.namespace or "default"
        return Cluster(settings.api_server, namespace, override, ca, settings.insecure_skip_tls_verify)
    if settings.kubeconfig:
        return _from_kubeconfig(settings, Path(settings.kubeconfig).expanduser(), override)
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError(
            "in_cluster: KUBERNETES_SERVICE_HOST is not set: not running in a pod", ("in_cluster",)
        )
    host = f"[{host}]" if ":" in host else host
    namespace_file = service_account / "namespace"
    namespace = settings.namespace or (
        _read(namespace_file, "in_cluster").strip() if namespace_file.is_file() else "default"
    )
    token = override or Token(path=service_account / "token")
    ca = _read(service_account / "ca.crt", "in_cluster")
    return Cluster(f"https://{host}:{port}", namespace, token, ca, settings.insecure_skip_tls_verify)


def _from_kubeconfig(settings: KubernetesSettings, path: Path, override: Token | None) -> Cluster:
    try:
        config = yaml.safe_load(_read(path, "kubeconfig"))
    except yaml.YAMLError as error:
        raise ConfigError(f"kubeconfig {path}: not valid YAML ({error})", ("kubeconfig",)) from None
    config = config if isinstance(config, dict) else {}
    name = settings.context or config.get("current-context")
    context = _named(config, "contexts", name, path)
    cluster = _named(config, "clusters", context.get("cluster"), path)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise ConfigError(
            f"kubeconfig {path}: cluster {context.get('cluster')!r} has no server URL", ("kubeconfig",)
        )
    ca = None
    if cluster.get("certificate-authority-data"):
        try:
            ca = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                f"kubeconfig {path}: certificate-authority-data is not base64 PEM", ("kubeconfig",)
            ) from None
    elif cluster.get("certificate-authority"):
        ca = _read(path.parent / str(cluster["certificate-authority"]), "kubeconfig")
    token = override or _user_token(config, context.get("user"), path)
    namespace = settings.namespace or str(context.get("namespace") or "default")
    return Cluster(server, namespace, token, ca, bool(cluster.get("insecure-skip-tls-verify")))


def _user_token(config: dict[str, Any], name: object, path: Path) -> Token:
    user = _named(config, "users", name, path)
    if user.get("token"):
        return Token(value=str(user["token"]))
    if user.get("tokenFile"):
        return Token(path=path.parent / str(user["tokenFile"]))
    has = ", ".join(sorted(user)) or "nothing"
    raise ConfigError(
        f"kubeconfig {path}: user {name!r} has no token or tokenFile (it has {has}); exec plugins and"
        " client certificates are not supported: give a service-account token with token_env",
        ("kubeconfig",),
    )


def _named(config: dict[str, Any], section: str, name: object, path: Path) -> dict[str, Any]:
    kind = section.removesuffix("s")
    for item in config.get(section) or ():
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            return body if isinstance(body, dict) else {}
    raise ConfigError(f"kubeconfig {path}: no {kind} named {name!r}", ("kubeconfig",))


def _read(path: Path, setting: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path}: {error.strerror}", (setting,)) from None


def tls_client(cluster: Cluster) -> httpx.Client:
    """A client that trusts the cluster's own CA: the shared one cannot (TLS trust is per client)."""
    if cluster.insecure:
        return httpx.Client(verify=False, timeout=DEFAULT_TIMEOUT)
    try:
        trust = ssl.create_default_context(cadata=cluster.ca_pem)
    except ssl.SSLError as error:
        raise ConfigError(f"the cluster CA is not a PEM certificate ({error.reason})") from None
    return httpx.Client(verify=trust, timeout=DEFAULT_TIMEOUT)
