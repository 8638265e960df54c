"""The GitHub workflow a fork uses unchanged: linted by actionlint and zizmor with no finding,
written as the project's conventions say (pinned actions, least privilege, timeouts, nothing from
the event in a run: line), and its kind job's commands checked against the code they call, since
no machine of ours can run that job (no Docker engine)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _workflow(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN))
    assert found, f"{name} is not installed in the venv: make setup installs the dev extra"
    return found


def test_there_is_a_workflow() -> None:
    assert [p.name for p in WORKFLOWS] == ["runbooks.yml"]


def test_actionlint_finds_nothing() -> None:
    done = subprocess.run([_tool("actionlint"), *map(str, WORKFLOWS)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    done = subprocess.run([_tool("zizmor"), "--offline", "--format", "json", ".github/workflows/"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    findings = json.loads(done.stdout or "[]")
    assert findings == [], [f.get("ident") for f in findings]
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_the_version_named(path: Path) -> None:
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", path.read_text(), re.M)
    assert uses
    for ref, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), (
            f"{ref} is not pinned by full SHA"
        )
        assert re.fullmatch(r"\s*#\s*v\d+(\.\d+)*", rest), f"{ref}: the comment names no version"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_timeouts_and_no_untrusted_interpolation(path: Path) -> None:
    flow = _workflow(path)
    assert flow["permissions"] == {}, "no permissions at the top: each job asks for its own"
    assert "pull_request_target" not in flow["on"]
    for name, job in flow["jobs"].items():
        assert "permissions" in job, f"job {name} does not declare its permissions"
        assert 0 < job["timeout-minutes"] <= 60, f"job {name} has no sensible timeout"
        for step in job["steps"]:
            if "uses" in step and step["uses"].startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, (
                    f"{name}: checkout keeps the token"
                )
            assert "${{" not in step.get("run", ""), f"{name}: an expression in a run: line"
    writers = {
        n for n, j in flow["jobs"].items() if any(v == "write" for v in j["permissions"].values())
    }
    assert writers == {"pages"}, "only the publishing job writes anything"
    assert flow["jobs"]["pages"]["concurrency"] == {"group": "pages", "cancel-in-progress": False}


def test_the_jobs_run_the_readme_commands_and_keep_what_they_made() -> None:
    jobs = _workflow(ROOT / ".github/workflows/runbooks.yml")["jobs"]
    runs = {n: [s.get("run", "") for s in j["steps"]] for n, j in jobs.items()}
    assert "make test" in runs["test"]
    assert "make runbook" in runs["runbook"]
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make runbook" in readme
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")
    kept = {
        s["with"]["name"]: s["with"]["path"]
        for s in jobs["runbook"]["steps"]
        if "upload" in s.get("uses", "")
    }
    assert "build/runbooks/" in kept["executed-runbooks"] and kept["site"] == "build/site/"


def test_pages_publishes_the_site_this_run_built() -> None:
    """The publishing job adds the runbook job's artifact to gh-pages with ``helm-runbook publish``
    (which refuses a failed or uncommitted run) and deploys the branch: it never builds a site."""
    from helm_runbook.cli import build_parser

    pages = _workflow(ROOT / ".github/workflows/runbooks.yml")["jobs"]["pages"]
    assert pages["needs"] == "runbook"
    [download] = [
        s for s in pages["steps"] if s.get("uses", "").startswith("actions/download-artifact@")
    ]
    assert download["with"] == {"name": "site", "path": "build/site"}
    script = "\n".join(s.get("run", "") for s in pages["steps"])
    assert not re.search(r"\bmake\b|mkdocs|helm-runbook run", script)
    published = [shlex.split(c) for c in re.findall(r"helm-runbook publish[^;\n]*", script)]
    assert len(published) == 2
    for argv in published:
        opts = build_parser().parse_args(argv[1:])
        assert opts.site == "build/site" and opts.branch == "gh-pages"
    assert [s.get("uses", "").split("@")[0] for s in pages["steps"]][-2:] == [
        "actions/upload-pages-artifact", "actions/deploy-pages"]  # fmt: skip


def _kind_job() -> dict[str, Any]:
    return _workflow(ROOT / ".github/workflows/runbooks.yml")["jobs"]["kind"]


def _expanded(command: str, env: dict[str, str]) -> list[str]:
    return shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], command))


def test_the_kind_job_runs_what_the_runner_accepts() -> None:
    """The job's ``helm-runbook run`` line parses with the runner's own arguments, names runbooks
    that exist, and targets the context kind creates (kind-<cluster name>) in the namespace the
    stand-in upstream runs in."""
    from helm_runbook.cli import build_parser
    from helm_runbook.runner import notebooks

    job = _kind_job()
    env = job["env"]
    [kind_step] = [s for s in job["steps"] if s.get("uses", "").startswith("helm/kind-action@")]
    assert kind_step["with"]["cluster_name"] == env["KIND_CLUSTER"]
    [line] = [
        ln for s in job["steps"] for ln in s.get("run", "").splitlines() if "helm-runbook run" in ln
    ]
    argv = _expanded(line, env)
    assert argv[0] == ".venv/bin/helm-runbook"
    opts = build_parser().parse_args(argv[1:])
    assert opts.target == f"kind-{env['KIND_CLUSTER']}/{env['NAMESPACE']}"
    names = [p.name for p in notebooks()]
    assert opts.notebooks == ["01", "02", "03", "04", "05"]
    assert all(any(n.startswith(f"{number}-") for n in names) for number in opts.notebooks)


def test_the_kind_profile_values_and_upstream_fit_together() -> None:
    """The profile the job copies to build/profile.yaml names the same context and namespace; its
    values file makes the production release use the image the job built (never pulled); the
    stand-in upstream's manifest is valid Kubernetes, runs a subcommand the CLI has, and is the
    upstream the profile points at."""
    from helm_runbook.chart.manifests import RenderedRelease, validate
    from helm_runbook.chart.sdk import render
    from helm_runbook.cli import build_parser
    from helm_runbook.steps.chart import CHART_DIR
    from helm_runbook.steps.presets import profile_values
    from helm_runbook.steps.profile import load_profile

    job = _kind_job()
    env = job["env"]
    profile = load_profile(ROOT / ".github/kind/profile.yaml")
    assert profile.target_spec == f"kind-{env['KIND_CLUSTER']}/{env['NAMESPACE']}"
    assert profile.proxy_model == "mock-model"  # what the stand-in upstream serves

    build, load = next(
        s["run"] for s in job["steps"] if "docker build" in s.get("run", "")
    ).splitlines()
    built = _expanded(build, env)
    image = built[built.index("-t") + 1]
    assert built[-1] == "." and (ROOT / "Dockerfile").is_file()
    assert _expanded(load, env)[:4] == ["kind", "load", "docker-image", image]
    release = render(CHART_DIR, profile_values(profile), namespace=env["NAMESPACE"])
    assert validate(release).ok
    [deployment] = release.of_kind("Deployment")
    [runtime] = [c for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert runtime["image"] == image == "helm-ai-kernel-reference:ci"
    assert runtime["imagePullPolicy"] == "Never"

    docs = [
        d for d in yaml.safe_load_all((ROOT / ".github/kind/mock-upstream.yaml").read_text()) if d
    ]
    report = validate(
        RenderedRelease(
            "mock-upstream", env["NAMESPACE"], [("mock-upstream.yaml", d) for d in docs]
        )
    )
    assert report.ok and not report.unchecked, report.failed
    [upstream] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = upstream["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image and container["imagePullPolicy"] == "Never"
    command = container["command"]
    assert (
        command[0] == "helm-runbook"
    )  # a console script of the image (pyproject [project.scripts])
    opts = build_parser().parse_args(command[1:])
    [service] = [d for d in docs if d["kind"] == "Service"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert profile.upstream_url == f"http://{host}:{opts.port}/v1"
    assert service["spec"]["ports"][0]["port"] == opts.port


def test_the_image_has_the_upstream_stand_ins_imports() -> None:
    """The image installs the package with only its postgres extra: the stand-in upstream the kind
    job runs from it must start without the notebooks, chart or kube extras."""
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, *a):\n"
        "        if name.split('.')[0] in {'papermill', 'nbclient', 'helm_python', 'kubernetes', "
        "'kubernetes_validate', 'jupyterlab', 'matplotlib', 'mkdocs'}:\n"
        "            raise ImportError('not in the image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from helm_runbook.cli import build_parser\n"
        "opts = build_parser().parse_args(['mock-upstream', '--port', '0'])\n"
        "from helm_runbook.standins import mock_upstream\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.stdout.strip() == "ok", done.stderr
