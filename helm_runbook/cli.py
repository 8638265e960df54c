"""``helm-runbook``: the operator CLI. Parses arguments, calls one library function, prints the
result; a ``RunbookError`` exits 2 with its fix line, anything unexpected exits 1.

Secrets never come from flags (shell history, process lists): the admin key is read from
``HELM_RUNBOOK_ADMIN_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from helm_runbook.errors import RunbookError

ENV_PREFIX = "HELM_RUNBOOK_"


def _cmd_verify_receipts(opts: argparse.Namespace) -> int:
    from helm_runbook.verify import load_receipts, verify_receipts

    key = opts.public_key
    if opts.public_key_file:
        key = Path(opts.public_key_file).read_text().strip()
    if not key:
        raise RunbookError(
            "verify-receipts needs the trusted public key",
            fix="pass --public-key HEX or --public-key-file <data-dir>/root.pub",
        )
    headers = {"X-Helm-Tenant-ID": opts.tenant, "X-Helm-Principal-ID": opts.principal}
    admin_key = os.environ.get(ENV_PREFIX + "ADMIN_API_KEY", "")
    if admin_key:
        headers["Authorization"] = f"Bearer {admin_key}"
    report = verify_receipts(load_receipts(opts.source, headers=headers), key)
    print(report)
    report.raise_for_failures()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helm-runbook", description=__doc__)
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
    vr.set_defaults(func=_cmd_verify_receipts)
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        return int(opts.func(opts))
    except RunbookError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
