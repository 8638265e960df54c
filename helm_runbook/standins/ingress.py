"""The release's Ingress served by a real nginx on this machine (the local target's ingress
controller), configured from the rendered Ingress object and its TLS Secrets.

Each rule's host gets a ``server`` block; each path a ``location`` (``Exact`` → ``=``, ``Prefix``
and ``ImplementationSpecific`` → a prefix) proxying to the backend Service port, resolved through
the Service's ``targetPort`` to the pod's forwarded 127.0.0.1 port. Hosts named by a ``tls`` entry
are served over https with that Secret's ``tls.crt``/``tls.key`` (written 0600 under the workdir);
the others over http. An unknown host gets 404, as ingress-nginx's default backend answers.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.standins.observability import (
    cmdline_has,
    owner_only_dir,
    terminate,
    write_private,
)
from helm_runbook.standins.process import free_port

HOST = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
PATH = re.compile(r"/[-A-Za-z0-9._~/%]*")  # no space, quote, brace or ';' reaches nginx.conf
MAX_PEM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Route:
    host: str
    path: str
    path_type: str
    service: str
    port: str | int  # the Service port, by name or number


@dataclass(frozen=True)
class IngressPlan:
    """What the Ingress asks for: its routes and, per TLS Secret, the hosts it secures."""

    name: str
    routes: tuple[Route, ...]
    tls: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def tls_hosts(self) -> dict[str, str]:
        """host → the TLS Secret that secures it."""
        return {host: secret for secret, hosts in self.tls for host in hosts}


def ingress_plan(release: RenderedRelease) -> IngressPlan | None:
    """The release's Ingress as routes and TLS entries (None without one); hosts and paths are
    checked by the API server's rules before they reach a configuration file."""
    ingresses = release.of_kind("Ingress")
    if not ingresses:
        return None
    ingress = ingresses[0]
    name = ingress["metadata"]["name"]
    routes = []
    for rule in ingress["spec"].get("rules") or []:
        host = _check(HOST, "host", rule.get("host", ""), name)
        for item in (rule.get("http") or {}).get("paths") or []:
            backend = item["backend"]["service"]
            port = backend["port"].get("name") or int(backend["port"]["number"])
            routes.append(Route(host, _check(PATH, "path", item.get("path", "/"), name),
                                item.get("pathType", "ImplementationSpecific"), backend["name"], port))  # fmt: skip
    tls = tuple(
        (str(entry.get("secretName", "")), tuple(_check(HOST, "tls host", h, name) for h in entry.get("hosts") or []))
        for entry in ingress["spec"].get("tls") or []
    )  # fmt: skip
    return IngressPlan(name, tuple(routes), tls)


def _check(pattern: re.Pattern[str], what: str, value: object, ingress: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not pattern.fullmatch(value):
        raise StepFailed(f"ingress.{what.replace(' ', '-')}", expected=f"a valid Ingress {what}",
                         seen=f"{value!r} in Ingress {ingress}", fix=f"fix ingress.hosts / ingress.tls ({what})")  # fmt: skip
    return value


def backend_address(release: RenderedRelease, route: Route, ports: dict[str, int]) -> str:
    """The 127.0.0.1 address serving a route's Service port (Service → targetPort → pod port)."""
    services = {s["metadata"]["name"]: s for s in release.of_kind("Service")}
    service = services.get(route.service)
    if service is None:
        raise StepFailed("ingress.backend", expected=f"Service {route.service} in the release",
                         seen=f"Services: {sorted(services)}", fix="point the Ingress backend at the release's Service")  # fmt: skip
    port = next(
        (
            p
            for p in service["spec"].get("ports", [])
            if route.port in (p.get("name"), p.get("port"))
        ),
        None,
    )
    if port is None:
        raise StepFailed("ingress.backend", expected=f"Service {route.service} with port {route.port!r}",
                         seen=f"ports {[p.get('name') for p in service['spec'].get('ports', [])]}",
                         fix="name a port of the Service in the Ingress backend")  # fmt: skip
    target = port.get("targetPort", port.get("port"))
    container = release.get("Deployment")["spec"]["template"]["spec"]["containers"][0]
    name = next(
        (
            p["name"]
            for p in container.get("ports", [])
            if target in (p.get("name"), p.get("containerPort"))
        ),
        None,
    )
    if name is None or name not in ports:
        raise StepFailed("ingress.backend", expected=f"targetPort {target!r} served by the pod",
                         seen=f"forwarded ports {sorted(ports)}", fix="target a container port by name")  # fmt: skip
    return f"127.0.0.1:{ports[name]}"


def tls_pair(secrets: Any, secret: str, hosts: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """``tls.crt`` and ``tls.key`` of a TLS Secret, parsed: StepFailed naming the Secret when it
    is missing, lacks a key, is not PEM, the key does not match, or the certificate does not
    name a host it must secure."""
    step = "ingress.tls"
    data = secrets.get(secret) if secret else None
    if data is None:
        raise StepFailed(step, expected=f"the Ingress's TLS Secret {secret or '(no secretName)'}",
                         seen=f"no Secret {secret!r} in the namespace",
                         fix=f"kubectl create secret tls {secret or 'NAME'} --cert=tls.crt --key=tls.key "
                             "(runbook 09 creates a self-signed one)")  # fmt: skip
    crt, key = data.get("tls.crt"), data.get("tls.key")
    if not crt or not key:
        raise StepFailed(step, expected=f"Secret {secret} with tls.crt and tls.key",
                         seen=f"keys {sorted(data)}", fix=f"recreate {secret} with kubectl create secret tls")  # fmt: skip
    try:
        if len(crt) > MAX_PEM_BYTES or len(key) > MAX_PEM_BYTES:
            raise ValueError("larger than 64 KiB")
        cert = x509.load_pem_x509_certificate(crt)
        private = load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise StepFailed(step, expected=f"Secret {secret} holding a PEM certificate and key",
                         seen=f"unreadable: {exc}", fix=f"recreate {secret} from valid PEM files") from exc  # fmt: skip
    if private.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise StepFailed(step, expected=f"Secret {secret}'s tls.key matching its tls.crt",
                         seen="a key of another certificate", fix=f"recreate {secret} with the pair")  # fmt: skip
    with contextlib.suppress(x509.ExtensionNotFound):
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        covered = set(names.get_values_for_type(x509.DNSName))
        missing = [h for h in hosts if h not in covered]
        if missing:
            raise StepFailed(step, expected=f"Secret {secret}'s certificate naming {', '.join(hosts)}",
                             seen=f"it names {sorted(covered)}", fix="issue the certificate for the Ingress hosts")  # fmt: skip
    return crt, key


def nginx_config(
    plan: IngressPlan, home: Path, *, backends: dict[Route, str], certs: dict[str, tuple[Path, Path]],
    https_port: int, http_port: int,
) -> str:  # fmt: skip
    """nginx.conf for the plan: files under ``home``, one server per host, listening on 127.0.0.1."""
    hosts: dict[str, list[Route]] = {}
    for route in plan.routes:
        hosts.setdefault(route.host, []).append(route)
    tls_hosts = plan.tls_hosts
    servers = []
    for host, routes in hosts.items():
        lines = []
        if host in tls_hosts:
            crt, key = certs[tls_hosts[host]]
            lines += [
                f"listen 127.0.0.1:{https_port} ssl;",
                f"ssl_certificate {crt};",
                f"ssl_certificate_key {key};",
            ]
        else:
            lines += [f"listen 127.0.0.1:{http_port};"]
        lines.append(f"server_name {host};")
        for route in sorted(routes, key=lambda r: -len(r.path)):
            match = "= " if route.path_type == "Exact" else ""
            proto = "https" if host in tls_hosts else "http"
            lines += [f"location {match}{route.path} {{",
                      f"    proxy_pass http://{backends[route]};",
                      "    proxy_http_version 1.1;",
                      "    proxy_set_header Host $host;",
                      "    proxy_set_header X-Forwarded-For $remote_addr;",
                      f"    proxy_set_header X-Forwarded-Proto {proto};",
                      "}"]  # fmt: skip
        servers.append("  server {\n" + "".join(f"    {line}\n" for line in lines) + "  }\n")
    default = [f"listen 127.0.0.1:{http_port} default_server;"]
    if certs:
        crt, key = next(iter(certs.values()))
        default = [f"listen 127.0.0.1:{https_port} ssl default_server;", *default,
                   f"ssl_certificate {crt};", f"ssl_certificate_key {key};"]  # fmt: skip
    servers.append(
        "  server {\n" + "".join(f"    {line}\n" for line in [*default, "return 404;"]) + "  }\n"
    )
    temp = home / "tmp"
    return (
        f"# generated from Ingress {plan.name}\n"
        "daemon on;\nmaster_process off;\n"
        f"pid {home / 'nginx.pid'};\nerror_log {home / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {home / 'access.log'};\n"
        + "".join(f"  {kind}_temp_path {temp / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + "  client_max_body_size 8m;\n  server_tokens off;\n"
        + "".join(servers)
        + "}\n"
    )  # fmt: skip


class LocalIngress:
    """Debian's nginx serving the release's Ingress; state and files under ``workdir/ingress``."""

    def __init__(self, workdir: Path) -> None:
        self.home = workdir.resolve() / "ingress"
        self.state_file = self.home / "state.json"

    def state(self) -> dict[str, Any]:
        """``{"https_port", "http_port", "pid"}`` while nginx runs, else empty."""
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(self.state_file.read_text())
            pid = int((self.home / "nginx.pid").read_text().strip())
            if isinstance(state, dict) and cmdline_has(pid, b"nginx"):
                return {**state, "pid": pid}
        return {}

    def start(
        self, release: RenderedRelease, secrets: Any, ports: dict[str, int]
    ) -> dict[str, Any]:
        """Configure and start nginx for the release's Ingress (stopping a previous one)."""
        plan = ingress_plan(release)
        self.stop()
        if plan is None:
            return {}
        binary = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
        )
        if binary is None:
            raise TargetUnavailable("the local target's Ingress needs nginx",
                                    fix="apt-get install -y nginx (make system-deps installs it)")  # fmt: skip
        owner_only_dir(self.home)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            owner_only_dir(self.home / "tmp" / kind)
        certs: dict[str, tuple[Path, Path]] = {}
        for secret, hosts in plan.tls:
            crt, key = tls_pair(secrets, secret, hosts)
            tls_dir = owner_only_dir(self.home / "tls" / secret)
            write_private(tls_dir / "tls.crt", crt.decode())
            write_private(tls_dir / "tls.key", key.decode())
            certs[secret] = (tls_dir / "tls.crt", tls_dir / "tls.key")
        backends = {route: backend_address(release, route, ports) for route in plan.routes}
        https_port, http_port = free_port(), free_port()
        config = self.home / "nginx.conf"
        write_private(config, nginx_config(plan, self.home, backends=backends, certs=certs,
                                            https_port=https_port, http_port=http_port))  # fmt: skip
        run = subprocess.run([binary, "-p", str(self.home), "-c", str(config)], capture_output=True,
                             timeout=20, start_new_session=True)  # fmt: skip
        if run.returncode != 0:
            raise StepFailed("ingress.nginx", expected="nginx starts with the generated configuration",
                             seen=(run.stderr or run.stdout).decode(errors="replace")[-600:],
                             fix=f"read {config} and {self.home / 'error.log'}")  # fmt: skip
        state = {"https_port": https_port, "http_port": http_port, "ingress": plan.name,
                 "hosts": sorted({r.host for r in plan.routes}), "tls_hosts": sorted(plan.tls_hosts)}  # fmt: skip
        write_private(self.state_file, json.dumps(state))
        return state

    def stop(self) -> None:
        state = self.state()
        if state:
            terminate(int(state["pid"]), lambda pid: cmdline_has(pid, b"nginx"))
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
