"""``helm-ai-kernel``: the runtime's command line, as the chart's container runs it.

    helm-ai-kernel serve --policy PATH [--addr ADDR] [--port PORT] [--data-dir DIR] [--json]

Bad usage exits 2 with a one-line reason (docs/upstream-contract.md#serve-cli); start-up refusals exit 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import NoReturn

from helm_runbook.formats.policy_bundle import PolicyFileError, parse_serve_policy
from helm_runbook.runtime import KERNEL_VERSION
from helm_runbook.runtime.settings import Settings, SettingsError

USAGE_EXIT = 2


def _usage_error(message: str) -> NoReturn:
    print(f"helm-ai-kernel: {message}", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _usage_error(message)


def _serve_parser() -> _Parser:
    parser = _Parser(prog="helm-ai-kernel serve", description="Serve the HELM AI Kernel API.")
    parser.add_argument("--policy", help="serve-policy TOML (required)")
    parser.add_argument(
        "--addr", default="", help="bind address (default: policy server.bind, then 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="API port (default: policy server.port, then 7714)"
    )
    parser.add_argument(
        "--data-dir", default="data", help="state directory: root.key, helm.db (default: data)"
    )
    parser.add_argument("--json", action="store_true", help="print a ready record on stdout")
    return parser


def defer_uvicorn_cli() -> None:
    """Import uvicorn's package without running its ``__init__`` until a name of it is used.

    That ``__init__`` imports uvicorn's command line (click) and reloaders (watchfiles,
    multiprocessing): 0.06 s of every pod start, none of it used by a runtime that imports
    ``uvicorn.config`` and ``uvicorn.server`` itself. The first attribute read (``uvicorn.run``,
    ``uvicorn.Config``) runs the real ``__init__``, so ``uvicorn`` behaves as usual. For the
    runtime's own process only: a no-op once uvicorn is imported.
    """
    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not a regular package: import it as usual
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def first_use(name: str) -> object:
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'uvicorn' has no attribute {name!r}") from None

    package.__dict__["__getattr__"] = first_use
    sys.modules["uvicorn"] = package


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(
            "usage: helm-ai-kernel serve --policy PATH [--addr ADDR] [--port PORT] [--data-dir DIR] [--json]\n"
            "       helm-ai-kernel version"
        )
        return 0 if args else USAGE_EXIT
    command, rest = args[0], args[1:]
    if command == "version":
        print(KERNEL_VERSION)
        return 0
    if command.startswith("-"):
        _usage_error(f"Unknown flag {command}; To start the server, name it: helm-ai-kernel serve")
    if command != "serve":
        _usage_error(f"unknown command {command!r}; use: helm-ai-kernel serve --policy PATH")
    opts = _serve_parser().parse_args(rest)
    if not opts.policy:
        _usage_error("serve requires --policy")
    policy_path = Path(opts.policy)
    if policy_path.suffix != ".toml":
        _usage_error(f"invalid policy: {policy_path} must be a .toml file")
    try:
        serve_policy = parse_serve_policy(policy_path.read_bytes(), source=str(policy_path))
    except OSError as exc:
        _usage_error(f"invalid policy: cannot read {policy_path}: {exc.strerror}")
    except PolicyFileError as exc:
        _usage_error(f"invalid policy: {exc}")
    if opts.port and not 1 <= opts.port <= 65535:
        _usage_error(f"--port {opts.port} must be in 1..65535")
    try:
        settings = Settings.from_env(
            policy_path=policy_path,
            addr=opts.addr or serve_policy.bind or "127.0.0.1",
            port=opts.port or serve_policy.port or 7714,
            data_dir=Path(opts.data_dir),
        )
    except SettingsError as exc:
        print(f"helm-ai-kernel: start server: {exc}", file=sys.stderr)
        return 1
    defer_uvicorn_cli()
    from helm_runbook.runtime.server import run  # heavy imports only once usage is valid

    return run(settings, json_ready=opts.json)


if __name__ == "__main__":
    raise SystemExit(main())
