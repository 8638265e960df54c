"""Headless Chromium driven over the DevTools protocol (websocket-client), and a static server for
a built site on 127.0.0.1. Small on purpose: navigate, evaluate, click, type, screenshot, and the
URL of every request the page made."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import websocket


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# axe-core from npm (package.json at the checkout's root; `make node-deps` installs it).
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
# Every rule axe ships with a tag, best practices included: the bar is "0 violations, any impact".
AXE_RUN = """axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n').slice(1).join(' ')),
  count: v.nodes.length})))"""

# The site's colour scheme (mkdocs.yml's palette: "default" light, "slate" dark) and the header's
# toggle that switches it: the visible one switches to the other scheme; the theme stores the choice.
SCHEME = "document.body.dataset.mdColorScheme"
TOGGLE = "document.querySelector('label.md-header__button[for^=__palette]:not([hidden])')"


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """``python -m http.server --bind 127.0.0.1 --directory root`` in a thread; yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """One headless Chromium page. ``requests`` collects every URL the page asked for."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        port = self._devtools_port(timeout=30)
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self._ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)
        self.requests: list[str] = []
        self.errors: list[str] = []  # uncaught script exceptions on the pages, as they happened
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def _devtools_port(self, timeout: float) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"chromium exited with {self._proc.returncode} before DevTools was up"
                )
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                thrown = details.get("exception") or {}
                self.errors.append(
                    thrown.get("description", details.get("text", "")).split("\n")[0]
                )
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} stayed falsy for {timeout}s")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(
            f"location.href.startsWith({json.dumps(url.split('#')[0])}) && document.readyState === 'complete'"
        )

    def viewport(self, width: int, height: int) -> None:
        """Lay pages out as a window of ``width`` x ``height`` CSS px; below 600 px wide, as a phone
        (touch, the page's ``<meta name=viewport>`` honoured)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's violations on the page as it is now (any impact), each with up to five of
        the elements it found and why."""
        if not AXE.exists():
            raise FileNotFoundError(
                f"{AXE} is missing: `make node-deps` installs axe-core (npm ci)"
            )
        if not self.evaluate("typeof axe !== 'undefined'"):
            self.evaluate(AXE.read_text() + "; true")
        violations: list[dict[str, Any]] = self.evaluate(AXE_RUN)
        return violations

    def switch_scheme(self, to: str) -> None:
        """Click the header's palette toggle, as a reader does; returns once the page is drawn in
        scheme ``to`` (the theme turns transitions off while it switches)."""
        self.evaluate(f"{TOGGLE}.click()")
        self.wait_for(f"{SCHEME} === {json.dumps(to)} && !document.body.hasAttribute('data-md-color-switching')"
                      " && document.getAnimations().length === 0")  # fmt: skip

    def text(self) -> str:
        """The page's text (textContent: innerText leaves out the runbook cells the page has not
        laid out yet, content-visibility: auto in layout.css)."""
        return str(self.evaluate("document.body.textContent"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)[
            "data"
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        # Chromium's helpers (renderer, GPU, zygote) share its session: end them all before the
        # profile directory goes, or they keep writing into it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)
            try:
                self._proc.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
        time.sleep(0.2)
        self._profile.cleanup()
