"""The runbooks by hand: JupyterLab started the documented way (``helm-runbook lab``), a notebook
opened in headless Chromium, every cell run from the Run menu (the UI, not the API), and the
rendered outputs read as a person reads them. Screenshots: build/screenshots/lab-*.png."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helm_runbook import runner
from helm_runbook.standins.process import free_port
from tests.browser import Browser, chromium_binary

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
SCREENSHOTS = runner.ROOT / "build" / "screenshots"
TOKEN = secrets.token_urlsafe(16)  # this run's own: a server left by another run never answers it


def _copy_runbook(name: str, into: Path, workdir: Path) -> None:
    """The committed notebook, byte for byte but for its workdir default (this test's own target)."""
    text = (runner.NOTEBOOKS / name).read_text()
    default = '\\"build/local-target\\"'  # as the parameter line is stored, inside a JSON string
    assert (default in text) == ("workdir" in text), f"{name}: workdir default not found"
    (into / name).write_text(text.replace(default, f'\\"{workdir}\\"'))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """``helm-runbook lab`` on a free port; yields its base URL and the seconds it took to answer."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    for name in ("01-chart-lint.ipynb", "02-secret-setup.ipynb"):
        _copy_runbook(name, root / "notebooks", root / "target")
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_TOKEN": TOKEN,
        "LAB_PORT": str(port),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    env.pop("DISPLAY", None)
    log = root / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "helm_runbook.cli", "lab", "--notebook-dir", str(root / "notebooks")],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    try:
        while time.monotonic() - start < 60:
            try:
                if (
                    httpx.get(f"{base}/api/status", params={"token": TOKEN}, timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield base, time.monotonic() - start
    finally:
        # What a supervisor or Ctrl-C does: `helm-runbook lab` is JupyterLab itself, which stops
        # its kernels; then, whatever the outcome, the session's processes are ended.
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        deadline = time.monotonic() + 20
        while (left := _naming(root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
                break
    assert not left, f"still running after helm-runbook lab was stopped: {left}"


def _naming(root: Path) -> list[int]:
    """Live processes whose command line names ``root``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(root).encode() in (entry / "cmdline").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh browser per notebook, as a person opening a link (no page to leave behind)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Chromium is not installed (make system-deps installs it with apt-get)")
    page = Browser(binary, width=1400, height=900)
    try:
        yield page
    finally:
        page.close()


def _click(page: Browser, selector: str, text: str, timeout: float = 20.0) -> None:
    """A real mouse click (DevTools Input events) on the visible element matching ``text``."""
    finder = f"""(() => {{
        const el = [...document.querySelectorAll({json.dumps(selector)})]
            .find(e => e.textContent.trim() === {json.dumps(text)} && e.getBoundingClientRect().width > 0);
        if (!el) return null;
        const r = el.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2];
    }})()"""
    try:
        x, y = page.wait_for(finder, timeout=timeout)
    except TimeoutError:
        page.screenshot(SCREENSHOTS / "lab-click-timeout.png")
        raise AssertionError(f"no visible {selector} reading {text!r}") from None
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


KERNEL_NAME_SHOWN = "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /helm-runbook [|] Idle/.test(e.textContent))"
PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"  # the notebook in front
DONE = """(() => {
    const panel = PANEL;
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
    return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p)) && status === 'idle';
})()""".replace("PANEL", PANEL)
SEEN = """(() => {
    const panel = PANEL;
    return {
        outputs: [...panel.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
        errors: panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
        cells: panel.querySelectorAll('.jp-CodeCell').length,
    };
})()""".replace("PANEL", PANEL)


STARTED = """(() => {
    const prompts = [...PANEL.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    return prompts.some(p => /^\\[(\\*|\\d+)\\]:$/.test(p));
})()""".replace("PANEL", PANEL)


DIALOG = (
    "[...document.querySelectorAll('.jp-Dialog-header')].some(e => e.textContent.includes('Select Kernel'))"
    " && 'dialog'"
)


def _menu_run_all_cells(page: Browser) -> None:
    """Run > Run All Cells, as a person clicks it (again if the menu did not open the first time)."""
    for _ in range(3):
        _click(page, ".lm-MenuBar-itemLabel", "Run")
        try:
            _click(page, ".lm-Menu-itemLabel", "Run All Cells", timeout=3)
            return
        except AssertionError:
            page.call(
                "Input.dispatchKeyEvent",
                type="keyDown",
                key="Escape",
                code="Escape",
                windowsVirtualKeyCode=27,
            )
            page.call(
                "Input.dispatchKeyEvent",
                type="keyUp",
                key="Escape",
                code="Escape",
                windowsVirtualKeyCode=27,
            )
    raise AssertionError("the Run menu never showed Run All Cells")


def _focus_notebook(page: Browser) -> None:
    """A real click on the notebook in front (its first cell's prompt area), giving it the focus."""
    finder = f"""(() => {{
        const cell = {PANEL}?.querySelector('.jp-Cell');
        if (!cell) return null;
        const r = cell.getBoundingClientRect();
        return r.width > 0 ? [r.x + 8, r.y + 8] : null;
    }})()"""
    x, y = page.wait_for(finder, timeout=20)
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


PROMPTS = (
    f"[...{PANEL}.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"
)


def _run_all_cells(page: Browser, base: str, name: str, timeout: float) -> dict[str, object]:
    stem = name.removesuffix(".ipynb")
    # A workspace of its own, reset: JupyterLab would otherwise restore the previous test's
    # notebook beside this one. The token leaves the URL once it is used.
    page.call("Page.navigate", url=f"{base}/lab/workspaces/{stem}/tree/{name}?reset&token={TOKEN}")
    page.wait_for(f"{PANEL}?.querySelectorAll('.jp-Cell').length > 0", timeout=60)
    # A person clicks into the notebook (the Run menu acts on the one that last had focus) and
    # runs all cells. JupyterLab may ask which kernel to start; the notebook's own (helm-runbook)
    # is preselected and a person accepts it, then runs all cells again.
    _focus_notebook(page)
    # JupyterLab starts two kernels for a notebook opened by its URL and shuts one down at once
    # (its log: two "Kernel started" in the same 10 ms, then "Kernel shutdown"); cells queued on
    # the wrong one are dropped. A person waits for the status bar to show the kernel idle.
    with contextlib.suppress(TimeoutError):
        page.wait_for(f"({DIALOG}) || ({KERNEL_NAME_SHOWN})", timeout=15)
    _menu_run_all_cells(page)
    with contextlib.suppress(TimeoutError):
        if (
            page.wait_for(f"({DIALOG}) || ({DONE}) || (({STARTED}) && 'started')", timeout=20)
            == "dialog"
        ):
            _click(page, ".jp-Dialog-buttonLabel", "Select")
            page.wait_for(KERNEL_NAME_SHOWN, timeout=60)
            _menu_run_all_cells(page)
    # JupyterLab can still drop queued cells (the kernel they were queued on shut down: the first
    # cells ran, the others back to "[ ]", maybe a Select Kernel dialog). A person who sees
    # nothing running and the notebook not done accepts the dialog and runs all cells again
    # (twice at most); cells that ran and never finished still fail below.
    deadline, reruns = time.monotonic() + timeout, 0
    last: list[str] = []
    changed = time.monotonic()
    while time.monotonic() < deadline:
        if page.evaluate(DONE):
            return dict(page.evaluate(SEEN))
        prompts = list(page.evaluate(PROMPTS))
        if "[*]:" in prompts or prompts != last:
            last, changed = prompts, time.monotonic()
        elif time.monotonic() - changed > 3 and reruns < 2:
            reruns += 1
            page.screenshot(SCREENSHOTS / f"lab-{stem}-stalled-{reruns}.png")
            if page.evaluate(DIALOG):  # the kernel it ran on went away: accept the notebook's own
                _click(page, ".jp-Dialog-buttonLabel", "Select")
                page.wait_for(KERNEL_NAME_SHOWN, timeout=60)
            _focus_notebook(page)
            _menu_run_all_cells(page)
            changed = time.monotonic()
        time.sleep(0.5)
    page.screenshot(SCREENSHOTS / f"lab-{stem}-timeout.png")
    seen = page.evaluate(SEEN)
    raise AssertionError(f"{name} did not finish in {timeout}s (runs again: {reruns}): {seen}")


@pytest.mark.parametrize(
    ("name", "steps"), [("01-chart-lint.ipynb", 3), ("02-secret-setup.ipynb", 2)]
)
def test_a_person_runs_the_runbook_in_jupyterlab(
    lab: tuple[str, float], browser: Browser, name: str, steps: int
) -> None:
    base, ready_s = lab
    seen = _run_all_cells(browser, base, name, timeout=60)
    browser.evaluate(
        f"[...{PANEL}.querySelectorAll('.jp-OutputArea-output')].pop()?.scrollIntoView()"
    )
    browser.screenshot(SCREENSHOTS / f"lab-{name.removesuffix('.ipynb')}.png")
    outputs = str(seen["outputs"])
    assert seen["errors"] == 0, outputs
    assert "Traceback" not in outputs and "Error" not in outputs, outputs
    assert outputs.count("PASS") >= steps, outputs
    assert browser.evaluate(KERNEL_NAME_SHOWN), "the notebook ran in the helm-runbook kernel"
    assert "FAIL" not in outputs, outputs
    print(f"JupyterLab answered after {ready_s:.1f}s")


def test_jupyterlab_asks_nothing_about_news_over_the_first_runbook(
    lab: tuple[str, float],
) -> None:
    """The environment's lab settings answer the "get notified about official Jupyter news?"
    question (no) and turn off the update check, as an onboarding image would."""
    base, _ = lab
    plugin = "@jupyterlab/apputils-extension:notification"
    settings = httpx.get(f"{base}/lab/api/settings/{plugin}", params={"token": TOKEN}, timeout=10)
    defaults = settings.json()["schema"]["properties"]  # overrides.json sets the defaults
    assert defaults["fetchNews"]["default"] == "false"
    assert defaults["checkForUpdates"]["default"] is False
