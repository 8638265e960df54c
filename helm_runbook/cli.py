"""``helm-runbook``: the operator CLI. Parses arguments, calls one library function, prints the
result. An expected failure prints one ``error:`` line and one ``fix:`` line and exits with the
status of its kind (listed below); only a bug prints a traceback (exit 1).

Secrets never come from flags (shell history, process lists): the admin key is read from
``HELM_RUNBOOK_ADMIN_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from helm_runbook import __version__
from helm_runbook.errors import (
    InputError,
    RunbookError,
    StepFailed,
    VerificationFailed,
    report_error,
)
from helm_runbook.tools.client import Credentials
from helm_runbook.usage import Parser

ENV_PREFIX = "HELM_RUNBOOK_"

#: Exit status of each kind of failure, documented in ``--help`` (``errors.exit_code`` maps them).
EXIT_STATUS = {
    0: "done, every check passed",
    1: "unexpected error (a bug: report it with the traceback)",
    2: "bad usage or input: a flag, a file, a key or a value",
    3: "the runtime or target could not be reached",
    4: "the runtime answered with an error status (401, 403, 404, 503, ...)",
    5: "a check failed: a smoke check, a signature, a chain, a chart guard, a runbook step",
}


def port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535 (0: a free one, printed at start)."""
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TCP port (1-65535, or 0 for a free one)"
        )
    return int(text)


def listen_port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    value = port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not a TCP port to open in a browser (1-65535)")
    return value


def http_url(text: str) -> str:
    """An argparse type: an http(s) URL with a host (``localhost:8080`` is refused, with the
    URL it probably meant)."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname:
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not an http(s) URL: write it with its scheme, e.g. http://{text.split('://')[-1] or '127.0.0.1:8080'}"
    )


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number (int or float) of at least 0."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if kind is int else ''}number"
            ) from None
        if not value >= 0 or value in (float("inf"),):
            raise argparse.ArgumentTypeError(f"{text} is below 0 (or not finite)")
        return value

    return convert


def _credentials(opts: argparse.Namespace) -> Credentials:
    return Credentials(
        os.environ.get(ENV_PREFIX + "ADMIN_API_KEY") or None,
        os.environ.get(ENV_PREFIX + "SERVICE_API_KEY") or None,
        getattr(opts, "tenant", "default"),
        getattr(opts, "principal", "system-admin"),
    )


def _read_text(path: str, what: str, fix: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise InputError(f"cannot read {what} {path}: {reason}", fix=fix) from exc


def _cmd_verify_receipts(opts: argparse.Namespace) -> int:
    from helm_runbook.tools.verify import load_receipts, normalise_public_key, verify_receipts

    key = opts.public_key
    if opts.public_key_file:
        key = _read_text(opts.public_key_file, "the public key file",
                         fix="pass <data-dir>/root.pub, or the hex itself with --public-key").strip()  # fmt: skip
    if not key:
        raise InputError(
            "verify-receipts needs the trusted public key",
            fix="pass --public-key HEX or --public-key-file <data-dir>/root.pub",
        )
    normalise_public_key(key)  # a malformed key is bad input before anything is fetched
    report = verify_receipts(load_receipts(opts.source, credentials=_credentials(opts)), key,
                             expect_head=opts.expect_head, expect_count=opts.expect_count)  # fmt: skip
    print(report)
    report.raise_for_failures()
    return 0


def _cmd_verify_evidence(opts: argparse.Namespace) -> int:
    from helm_runbook.formats.evidence import verify_pack
    from helm_runbook.tools.verify import normalise_public_key

    key = normalise_public_key(opts.public_key)
    evidence_key = (
        normalise_public_key(opts.evidence_public_key) if opts.evidence_public_key else key
    )
    _require_gzip_tar(opts.pack)
    try:
        with Path(opts.pack).open("rb") as pack:  # streamed: the pack's size is bounded there
            verified = verify_pack(pack, receipt_public_key=key, evidence_public_key=evidence_key)
    except OSError as exc:
        raise InputError(
            f"cannot read {opts.pack}: {exc.strerror}",
            fix="pass the tar.gz from /api/v1/evidence/export",
        ) from exc
    result = verified.as_json()
    print(f"evidence verification: {result['verdict']} ({result['roots']['entry_count']} receipts)")
    for check, status in result["checks"].items():
        print(f"  {check:<18} {status}")
    for error in result["errors"]:
        print(f"  - {error}")
    if result["verdict"] != "PASS":
        raise VerificationFailed(
            "evidence pack failed verification",
            fix="verify with the runtime's trust root (root.pub) and the pack exactly as exported",
        )
    return 0


def _require_gzip_tar(path: str) -> None:
    """InputError (exit 2) for a file that is not a gzip tar, before verifying anything: a
    wrong file is bad input, not a failed verification."""
    import gzip
    import tarfile
    import zlib

    fix = "pass the tar.gz from POST /api/v1/evidence/export, as downloaded"
    try:
        with Path(path).open("rb") as handle:
            magic = handle.read(2)
            handle.seek(0)
            if magic == b"\x1f\x8b":
                with (
                    gzip.GzipFile(fileobj=handle) as unzipped,
                    tarfile.open(fileobj=unzipped, mode="r|") as tar,
                ):
                    tar.next()  # the first header: 512 bytes decompressed, whatever the file's size
                return
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise InputError(f"cannot read {path}: {exc.strerror}", fix=fix) from exc
    except (tarfile.TarError, EOFError, zlib.error):
        pass
    raise InputError(f"{path} is not a gzip tar (an evidence pack is a tar.gz)", fix=fix)


def _cmd_mock_upstream(opts: argparse.Namespace) -> int:
    from helm_runbook.standins.mock_upstream import serve

    serve(opts.port, opts.host, latency_ms=opts.latency_ms, fail_every=opts.fail_every)
    return 0


def _cmd_controlplane(opts: argparse.Namespace) -> int:
    from helm_runbook.standins import controlplane
    from helm_runbook.tools import policy

    token = controlplane.load_token(Path(opts.token_file) if opts.token_file else None)
    signer = policy.load_policy_signer(Path(opts.key_file) if opts.key_file else None)
    mount = Path(opts.mount_path) if opts.mount_path else policy.DEFAULT_MOUNT
    controlplane.serve(opts.port, Path(opts.policy), signer, token, host=opts.host, mount_dir=mount)
    return 0


def _cmd_policy(opts: argparse.Namespace) -> int:
    from helm_runbook.tools import policy
    from helm_runbook.tools.verify import normalise_public_key

    mount = Path(opts.mount_path) if getattr(opts, "mount_path", None) else policy.DEFAULT_MOUNT
    if opts.policy_command == "keygen":
        made = policy.keygen(Path(opts.out))
        print(made.public_key if opts.quiet else made)
    elif opts.policy_command == "sign":
        signer = policy.load_policy_signer(Path(opts.key_file) if opts.key_file else None)
        print(policy.sign_policy(Path(opts.policy), signer, mount_dir=mount))
    elif opts.policy_command == "verify":
        normalise_public_key(opts.public_key)
        if not policy.verify_policy(Path(opts.policy), opts.public_key, mount_dir=mount):
            raise VerificationFailed(
                f"{opts.policy}.sig does not verify with the given public key",
                fix="find out what changed in the policy or its reference pack since it was signed; "
                "sign only a reviewed bundle, with the key whose public half is "
                "HELM_POLICY_TRUST_PUBLIC_KEY (and --mount-path as the chart mounts it)",
            )
        print(
            f"{opts.policy}.sig: valid for the policy and reference pack as mounted under {mount}"
        )
    else:
        key = os.environ.get(ENV_PREFIX + "SERVICE_API_KEY", "")
        if not key:
            raise InputError(
                "policy status needs the service API key",
                fix=f"export {ENV_PREFIX}SERVICE_API_KEY (the value of HELM_SERVICE_API_KEY)",
            )
        status = policy.reconcile_status(opts.url, key)
        for name in (
            "reconcile_status",
            "snapshot_status",
            "policy_hash",
            "policy_epoch",
            "reason",
        ):
            print(f"{name:<18} {status.get(name)}")
        if status.get("snapshot_status") != "active":
            raise StepFailed(
                "policy.status",
                expected="an active policy snapshot",
                seen=f"{status.get('snapshot_status')}: {status.get('reason')}",
                fix="check the bundle hash/signature and HELM_POLICY_TRUST_PUBLIC_KEY",
            )
    return 0


def _cmd_run(opts: argparse.Namespace) -> int:
    from helm_runbook import runner

    runner.run(runner.request_from(opts), via=runner.CLI_RUN)
    return 0


def _cmd_stop(opts: argparse.Namespace) -> int:
    from helm_runbook import runner

    workdir = Path(opts.workdir) if opts.workdir else runner.WORKDIR
    stopped = runner.stop_local_target(workdir, orphans=not opts.workdir)
    where = f"in {workdir}" + ("" if opts.workdir else " or left behind by this checkout")
    if not stopped:
        print(
            f"nothing to stop: no pod, relay, nginx or Prometheus of the local target runs {where}"
        )
    for line in stopped:
        print(f"stopped {line}")
    return 0


def _cmd_publish(opts: argparse.Namespace) -> int:
    from helm_runbook.site.publish import publish_site

    aliases = ("latest",) if opts.alias is None else tuple(opts.alias)
    print(publish_site(Path(opts.site), repo=Path(opts.repo), version=opts.version,
                       aliases=aliases, branch=opts.branch))  # fmt: skip
    return 0


def _cmd_smoke(opts: argparse.Namespace) -> int:
    from helm_runbook.steps.smoke import smoke
    from helm_runbook.tools.client import RuntimeClient

    credentials = _credentials(opts)
    if not credentials.admin_key:
        raise InputError(
            "smoke needs the admin API key",
            fix=f"export {ENV_PREFIX}ADMIN_API_KEY (the value of HELM_ADMIN_API_KEY)",
        )
    with RuntimeClient(
        opts.url, health_url=opts.health_url or None, credentials=credentials
    ) as client:
        print(smoke(client, proxy_model=opts.proxy_model or None))  # fmt: skip
    return 0


def _cmd_lab(opts: argparse.Namespace) -> int:
    from helm_runbook.harness.lab import serve_lab

    serve_lab(opts.port, Path(opts.notebook_dir) if opts.notebook_dir else None)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="helm-runbook",
        description=__doc__,
        epilog="exit status:\n"
        + "\n".join(f"  {code}  {why}" for code, why in EXIT_STATUS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    vr = sub.add_parser(
        "verify-receipts",
        help="verify receipt signatures and hash chains offline",
        description="Verify receipts from a JSON file or a GET /api/v1/receipts URL. "
        "For a URL, the admin key comes from HELM_RUNBOOK_ADMIN_API_KEY.",
    )
    vr.add_argument("source", help="receipts JSON file, JSON lines, or URL of /api/v1/receipts")
    vr.add_argument(
        "--public-key", default="", help="trusted Ed25519 public key, 64 hex (root.pub)"
    )
    vr.add_argument("--public-key-file", default="", help="file holding the public key hex")
    vr.add_argument("--tenant", default="default", help="X-Helm-Tenant-ID for a URL source")
    vr.add_argument(
        "--principal", default="system-admin", help="X-Helm-Principal-ID for a URL source"
    )
    vr.add_argument("--expect-head", help="the chain hash the (one) chain must end at")
    vr.add_argument("--expect-count", type=int, help="the number of receipts the chain must hold")
    vr.set_defaults(func=_cmd_verify_receipts)

    ve = sub.add_parser("verify-evidence", help="verify an exported evidence pack offline")
    ve.add_argument("pack", help="tar.gz from POST /api/v1/evidence/export")
    ve.add_argument("--public-key", required=True, help="receipt trust root, 64 hex (root.pub)")
    ve.add_argument("--evidence-public-key", default="", help="seal key if it differs (64 hex)")
    ve.set_defaults(func=_cmd_verify_evidence)

    mu = sub.add_parser("mock-upstream", help="serve the OpenAI-compatible stand-in upstream")
    mu.add_argument("--port", type=port, default=9999, help="1-65535; 0 picks a free one (printed)")
    mu.add_argument("--host", default="127.0.0.1")
    mu.add_argument(
        "--latency-ms", type=non_negative(float), default=0.0, help="added to every reply"
    )
    mu.add_argument("--fail-every", type=non_negative(int), default=0,
                    help="answer every Nth request with 500 (0: never)")  # fmt: skip
    mu.set_defaults(func=_cmd_mock_upstream)

    cp = sub.add_parser("controlplane", help="the stand-in policy control plane")
    cpsub = cp.add_subparsers(dest="controlplane_command", required=True)
    cps = cpsub.add_parser(
        "serve",
        help="serve a signed policy as the runtime's controlplane source reads it "
        f"(bearer token from {ENV_PREFIX}CONTROLPLANE_TOKEN or --token-file)",
    )
    cps.add_argument("policy", help="serve-policy.toml (its reference pack beside it)")
    cps.add_argument(
        "--port", type=port, default=9300, help="1-65535; 0 picks a free one (printed)"
    )
    cps.add_argument("--host", default="127.0.0.1")
    cps.add_argument("--key-file", default="", help=f"seed file (else {ENV_PREFIX}POLICY_KEY)")
    cps.add_argument("--token-file", default="", help="0600 file holding the bearer token")
    cps.add_argument(
        "--mount-path",
        default="",
        help="where the chart mounts the policy (default /etc/helm-ai-kernel/policy)",
    )
    cps.set_defaults(func=_cmd_controlplane)

    pol = sub.add_parser("policy", help="policy keys, signatures and reconcile status")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    kg = psub.add_parser(
        "keygen", help="create a policy signing seed file (0600); prints the public key"
    )
    kg.add_argument("--out", required=True, help="seed file to create (never overwritten)")
    kg.add_argument("--quiet", "-q", action="store_true",
                    help="print only the public key hex, e.g. PUB=$(helm-runbook policy keygen --out k -q)")  # fmt: skip
    sg = psub.add_parser("sign", help="write <policy>.sig for the policy as it will be mounted")
    sg.add_argument("policy", help="serve-policy.toml (its reference pack beside it)")
    sg.add_argument("--key-file", default="", help=f"seed file (else {ENV_PREFIX}POLICY_KEY)")
    vf = psub.add_parser("verify", help="check <policy>.sig against a public key")
    vf.add_argument("policy")
    vf.add_argument("--public-key", required=True, help="HELM_POLICY_TRUST_PUBLIC_KEY (64 hex)")
    for p in (sg, vf):
        p.add_argument(
            "--mount-path",
            default="",
            help="where the chart mounts the policy (default /etc/helm-ai-kernel/policy)",
        )
    st = psub.add_parser("status", help="send the wake hint and print the reconcile status")
    st.add_argument("url", type=http_url, help="runtime API URL, e.g. http://127.0.0.1:8080")
    pol.set_defaults(func=_cmd_policy)

    run = sub.add_parser(
        "run",
        help="execute runbook notebooks with papermill (into build/runbooks): the runner of make runbook, same arguments",
    )
    from helm_runbook.runner import add_run_arguments

    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    stop = sub.add_parser(
        "stop",
        help="stop the local target's pod, network relay, nginx and Prometheus (Secrets, ConfigMaps and PVCs stay)",
        description="Stops the local target's processes, found through their recorded identity even "
        "when build/ was deleted; without --workdir also every one this checkout left behind "
        "(never another checkout's).",
    )
    stop.add_argument(
        "--workdir",
        default="",
        help="only this local target (default: the checkout's build/local-target and orphans)",
    )
    stop.set_defaults(func=_cmd_stop)

    pub = sub.add_parser(
        "publish",
        help="add the built site to a gh-pages-style branch as one version (only a passing run of a clean commit)",
        description="Writes SITE as VERSION/ (and each alias, e.g. latest/) beside the versions published "
        "before, with versions.json for the version selector; the work tree is never touched.",
    )
    pub.add_argument(
        "--site", default="build/site", help="the site make runbook built (default: build/site)"
    )
    pub.add_argument("--repo", default=".", help="git repository holding the branch (default: .)")
    pub.add_argument("--branch", default="gh-pages", help="branch to write (default: gh-pages)")
    pub.add_argument(
        "--version", default="", help="folder name (default: the chart version the site documents)"
    )
    pub.add_argument("--alias", action="append", default=None,
                     help="alias moved to this version, repeatable (default: latest; --no-alias for none)")  # fmt: skip
    pub.add_argument(
        "--no-alias", dest="alias", action="store_const", const=[], help="publish without an alias"
    )
    pub.set_defaults(func=_cmd_publish)

    sm = sub.add_parser("smoke", help="the guide's smoke checks against an existing deployment")
    sm.add_argument("--url", required=True, type=http_url,
                    help="API URL, e.g. http://127.0.0.1:8080 after a port-forward")  # fmt: skip
    sm.add_argument("--health-url", default=None, type=http_url,
                    help="health-port URL, e.g. http://127.0.0.1:8081")  # fmt: skip
    sm.add_argument(
        "--proxy-model", default="", help="also send one chat completion for this model"
    )
    sm.add_argument("--tenant", default="default")
    sm.add_argument("--principal", default="system-admin")
    sm.set_defaults(func=_cmd_smoke)

    lab = sub.add_parser(
        "lab",
        help="JupyterLab on 127.0.0.1 in notebooks/ with the helm-runbook kernel (run the runbooks by hand)",
        description="The token is JUPYTER_TOKEN, generated and printed once when unset; the port is "
        "--port, else LAB_PORT, else 8888.",
    )
    lab.add_argument("--port", type=listen_port, default=None, help="default: $LAB_PORT or 8888")
    lab.add_argument(
        "--notebook-dir", default="", help="folder to serve (default: the checkout's notebooks/)"
    )
    lab.set_defaults(func=_cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        return int(opts.func(opts))
    except RunbookError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
