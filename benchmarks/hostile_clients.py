"""Hostile clients against ``helm-ai-kernel serve`` (issues 23.7 and 30). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/hostile_clients.py [--runtime-src DIR] [--only WORD]

For each attack (``helm_runbook/standins/hostile.py``): what the attacker saw, the runtime process's peak
resident memory (sampled every 10 ms) above its level before the attack, and the worst latency
of ``GET /health`` on the health port polled every 50 ms meanwhile. ``--runtime-src`` runs the
runtime from another source tree (e.g. ``git archive <commit> helm_runbook | tar -x -C DIR``)
to compare with an older version; the attacks and watchers stay the same. Issue 30's attacks
(what many requests or one request's fields add up to) also print the growth of ``helm.db``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hot_path import ADMIN, POLICY_TOML

from helm_runbook.standins import hostile
from helm_runbook.standins.process import RuntimeProcess

HEADERS = {
    "Authorization": f"Bearer {ADMIN}",
    "X-Helm-Tenant-ID": "default",
    "X-Helm-Principal-ID": "system-admin",
}
HEADER_TIMEOUT_S, BODY_TIMEOUT_S = 2.0, 3.0


# A cubic rule whose macros hide behind // comments, and 140 chained concatenations.
HIDDEN_MACROS = (
    "input.effect.params.args.l.// c\n all(a, input.effect.params.args.l.//\n"
    " all(b, input.effect.params.args.l.// c\n all(c, a + b + c >= 0)))"
)
CONCAT = "size(" + "+".join(["input.effect.params.args.s"] * 140) + ") > 0"
PACK = {
    "pack_id": "hostile",
    "version": 1,
    "runtime_actions": [
        {"action": "file_read", "expression": 'input.effect.params.args.path == "/etc/hostname"'},
        {"action": "LLM_INFERENCE"},
        {"action": "cel_hidden", "expression": HIDDEN_MACROS},
        {"action": "cel_concat", "expression": CONCAT},
    ],
}


def write_policy(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "serve-policy.toml").write_text(POLICY_TOML)
    (root / "reference-pack.json").write_text(json.dumps(PACK))
    return root / "serve-policy.toml"


def attacks(proc: RuntimeProcess, data: Path) -> list[tuple[str, Callable[[], hostile.Outcome]]]:
    url = proc.url
    return [
        ("deep JSON, 100,000 '[' then keep-alive", lambda: hostile.deep_json(url, HEADERS)),
        ("300 MB chunked body", lambda: hostile.chunked_flood(url, HEADERS, total=300 << 20)),
        ("64 MiB header, API port", lambda: hostile.huge_header(url, "/healthz", size=64 << 20)),
        ("64 MiB header, health port",
         lambda: hostile.huge_header(proc.health_url, "/healthz", size=64 << 20)),
        ("50 slowloris header senders",
         lambda: hostile.slow_headers(url, connections=50, seconds=HEADER_TIMEOUT_S + 4)),
        ("20 half-open bodies + 1 ordinary POST",
         lambda: hostile.slow_bodies(url, HEADERS, connections=20, seconds=BODY_TIMEOUT_S + 4)),
        ("multipart, 200 file parts", lambda: hostile.multipart_flood(url, files=200)),
        ("garbage query values, lone surrogates", lambda: hostile.garbage(url, HEADERS)),
        ("60 x 1 MB receipts, list limit=1000",
         lambda: hostile.big_listing(url, HEADERS, receipts=60, size=1_000_000)),
        # issue 30: what many requests, or one request's fields, add up to
        ("proxy: 40 x 1 MiB session_id + model", lambda: hostile.proxy_disk_flood(url, data)),
        ("proxy: one client's receipts for 5 s", lambda: hostile.anonymous_receipt_flood(url, data)),
        ("verify: 20 x 32 MiB uploads held", lambda: hostile.held_uploads(url)),
        ("proxy: 24 clients x 6 MiB bodies, 6 s", lambda: hostile.proxy_body_flood(url)),
        ("proxy: X-Helm-Principal system-admin", lambda: hostile.spoofed_identity(url, HEADERS)),
        ("CEL: comment-hidden cubic rule, 200 items",
         lambda: hostile.slow_cel(url, HEADERS, "cel_hidden", {"l": list(range(200))})),
        ("CEL: 140 chained concatenations of 200 KB",
         lambda: hostile.slow_cel(url, HEADERS, "cel_concat", {"s": "x" * 200_000})),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime-src", type=Path, help="run the runtime from this source tree")
    parser.add_argument("--only", default="", help="run the attacks whose name holds this word")
    args = parser.parse_args()
    env = {
        "HELM_ADMIN_API_KEY": ADMIN,
        "HELM_HTTP_HEADER_TIMEOUT": f"{HEADER_TIMEOUT_S:g}s",
        "HELM_HTTP_BODY_TIMEOUT": f"{BODY_TIMEOUT_S:g}s",
        "HELM_CONCURRENCY_MAX": "4",
        "HELM_ENABLE_OPENAI_PROXY": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.runtime_src:
            env["PYTHONPATH"] = _shadow_editable_install(args.runtime_src.resolve(), Path(tmp))
        policy = write_policy(Path(tmp) / "policy")
        data = Path(tmp) / "data"
        with RuntimeProcess(policy, data, env=env) as proc:
            assert proc.proc is not None
            print(f"runtime from {args.runtime_src or 'this checkout'}; header timeout "
                  f"{HEADER_TIMEOUT_S:g}s, body timeout {BODY_TIMEOUT_S:g}s, concurrency 4")  # fmt: skip
            print(
                f"{'attack':42} {'peak RSS MiB (+delta)':>22} {'health worst ms':>16}  client saw"
            )
            for name, attack in attacks(proc, data):
                if args.only and args.only not in name:
                    continue
                with (
                    hostile.HealthWatch(proc.health_url) as health,
                    hostile.RssWatch(proc.proc.pid) as rss,
                ):
                    try:
                        seen: object = attack()
                    except Exception as exc:
                        seen = f"{type(exc).__name__}: {exc}"
                failures = f" ({len(health.failures)} failed probes)" if health.failures else ""
                print(f"{name:42} {rss.peak_mib:>10.0f} (+{rss.peak_mib - rss.baseline_mib:>7.1f}) "
                      f"{health.worst_s * 1000:>16.0f}  {_summary(seen)}{failures}", flush=True)  # fmt: skip
                if proc.proc.poll() is not None:
                    print("the runtime exited")
                    return


def _shadow_editable_install(src: Path, tmp: Path) -> str:
    """A ``sitecustomize`` directory for the child: an import hook ahead of the editable
    install's (which wins over PYTHONPATH and the working directory) serves ``helm_runbook``
    from ``src``."""
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nfrom importlib.machinery import PathFinder\n\n\n"
        "class FromSource:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.split('.')[0] != 'helm_runbook':\n"
        "            return None\n"
        f"        return PathFinder.find_spec(name, path or [{str(src)!r}])\n\n\n"
        "sys.meta_path.insert(0, FromSource)\n"
    )
    return os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])


def _summary(seen: object) -> str:
    if not isinstance(seen, hostile.Outcome):
        return str(seen)[:120]
    counts = Counter(seen.statuses)
    statuses = (
        ", ".join(f"{s}x{n}" for s, n in sorted(counts.items(), key=lambda i: i[0] or 0))
        if len(seen.statuses) > 4
        else str(seen.statuses)
    )
    figures = ", ".join(f"{k}={v:g}" for k, v in seen.figures.items())
    details = f" {seen.details[-1][:40]}" if seen.details and len(seen.statuses) == 1 else ""
    return f"statuses={statuses}{details} {figures}".strip()[:200]


if __name__ == "__main__":
    main()
