"""Lighthouse's four scores (performance, accessibility, best practices, SEO) for every page of a
built docs site, mobile and desktop, light and dark scheme, with each page's HTML weight and the
bytes it transferred. Prints figures; asserts nothing (the site test runs axe-core on every page and fails on any
violation; this is the wider audit the web field reads).

    make runbook                                  # builds build/site
    (cd benchmarks/lighthouse && npm ci)          # Lighthouse 12.8.2, pinned: 12.x runs on Node 18/20
    .venv/bin/python benchmarks/lighthouse_site.py [--site build/site] [--form mobile,desktop]
        [--scheme light,dark] [--runs 3] [PAGE ...]

Chromium is Debian's (CHROME_PATH, default /usr/bin/chromium), headless, with every background
fetch off; the pages come from a static server on 127.0.0.1. PAGE filters by path (``runbooks/03``).
Lighthouse's mobile performance simulates a 4x slower CPU from the CPU time it observes, so a busy
machine lowers it: ``--runs 3`` prints the median run of three.

The dark scheme is the system's preference as Chromium gets it from a dark desktop
(``--force-dark-mode``: ``prefers-color-scheme: dark``; Lighthouse 12 emulates no media feature,
and its ``--screenEmulation``/``--emulated-user-agent`` do not touch it). The "seen" column is
read from Lighthouse's own final screenshot (mean lightness of the page), so a flag that stops
working shows as a "dark" row that was audited light.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import serve_directory  # noqa: E402

LIGHTHOUSE = ROOT / "benchmarks" / "lighthouse" / "node_modules" / "lighthouse" / "cli" / "index.js"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
CHROME_FLAGS = ("--headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking "
                "--disable-component-update --disable-sync --disable-default-apps --disable-extensions "
                "--disable-domain-reliability --metrics-recording-only --mute-audio --no-default-browser-check")  # fmt: skip
SCHEME_FLAGS = {
    "light": "",
    "dark": " --force-dark-mode",
}  # prefers-color-scheme, as a dark desktop sets it


def pages(site: Path) -> list[str]:
    return sorted(
        "" if p.parent == site else p.parent.relative_to(site).as_posix() + "/"
        for p in site.rglob("index.html")
    )


def seen_scheme(report: dict[str, Any]) -> str:
    """ "dark" or "light" from the mean lightness of Lighthouse's final screenshot ("?" without one,
    or without Pillow, which matplotlib brings)."""
    try:
        from PIL import Image, ImageStat
    except ImportError:
        return "?"
    data = ((report["audits"].get("final-screenshot") or {}).get("details") or {}).get("data", "")
    if not data.startswith("data:image/"):
        return "?"
    image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L")
    return "dark" if ImageStat.Stat(image).mean[0] < 128 else "light"


def audit(url: str, form: str, scheme: str = "light") -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="lighthouse-") as tmp:
        out = Path(tmp) / "report.json"
        command = ["node", str(LIGHTHOUSE), url, "--quiet", "--output=json", f"--output-path={out}",
                   f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROME_FLAGS}{SCHEME_FLAGS[scheme]}",
                   "--max-wait-for-load=30000"]  # fmt: skip
        if form == "desktop":
            command.append("--preset=desktop")
        env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
        subprocess.run(command, check=True, env=env, timeout=180, capture_output=True)
        report = json.loads(out.read_text())
    scores = {c: round(100 * (report["categories"][c]["score"] or 0)) for c in CATEGORIES}
    audits = report["audits"]
    failed = sorted(
        key
        for key, a in audits.items()
        if a.get("score") is not None
        and a["score"] < 1
        and a.get("scoreDisplayMode") in ("binary",)
    )
    return {
        **scores,
        "lcp_s": audits["largest-contentful-paint"]["numericValue"] / 1000,
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "transfer_kb": audits["total-byte-weight"]["numericValue"] / 1024,
        "seen": seen_scheme(report),
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--form", default="mobile,desktop")
    parser.add_argument(
        "--scheme", default="light,dark", help="colour schemes the system prefers: light, dark"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="audits per page and form; the median is printed"
    )
    parser.add_argument("filters", nargs="*")
    args = parser.parse_args(argv)
    if not LIGHTHOUSE.exists():
        print("Lighthouse is not installed: (cd benchmarks/lighthouse && npm ci)", file=sys.stderr)
        return 2
    selected = [
        p
        for p in pages(args.site)
        if not args.filters or any(f in (p or "(home)") for f in args.filters)
    ]
    schemes = args.scheme.split(",")
    if unknown := set(schemes) - set(SCHEME_FLAGS):
        parser.error(
            f"--scheme: {', '.join(sorted(unknown))} is not one of {', '.join(SCHEME_FLAGS)}"
        )
    print(f"{'page':38} {'form':8} {'scheme':6} {'seen':5} perf a11y  bp  seo   LCP    TBT   CLS  HTML KB  transfer KB  failed audits")  # fmt: skip
    with serve_directory(args.site) as origin:
        for page in selected:
            html_kb = (args.site / page / "index.html").stat().st_size / 1024
            for form in args.form.split(","):
                for scheme in schemes:
                    runs = [
                        audit(f"{origin}/{page}", form, scheme) for _ in range(max(1, args.runs))
                    ]
                    r = sorted(runs, key=lambda x: x["performance"])[
                        len(runs) // 2
                    ]  # the median run
                    print(f"{page or '(home)':38} {form:8} {scheme:6} {r['seen']:5} {r['performance']:4} "
                          f"{r['accessibility']:4} {r['best-practices']:4} {r['seo']:4} {r['lcp_s']:5.1f}s {r['tbt_ms']:4.0f}ms {r['cls']:5.2f} "
                          f"{html_kb:8.0f} {r['transfer_kb']:12.0f}  {' '.join(r['failed']) or '-'}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
