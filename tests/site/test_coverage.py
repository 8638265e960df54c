"""Guide coverage: a command counts only when a passed step ran it as the guide writes it."""

from __future__ import annotations

import json
from pathlib import Path

from helm_runbook.site.coverage import (
    GuideCommand,
    command_words,
    guide_commands,
    guide_coverage,
    shell_commands,
    unexecuted_equivalents,
)

INSTALL = GuideCommand(
    "s",
    "helm upgrade --install ...",
    "install",
    flags=("helm.production=true", "helm.policy.source.kind=controlplane"),
)


def _report(*records: dict[str, object]) -> dict[str, object]:
    return {"notebooks": [{"notebook": "07-x", "steps": list(records)}]}


def test_an_install_counts_only_with_every_flag_of_the_guide() -> None:
    full = {
        "step": "install",
        "ok": True,
        "cell": 3,
        "values": {
            "command": "helm upgrade --install r c \\\n  --set helm.production=true \\\n  --set helm.policy.source.kind=controlplane"
        },
    }
    partial = {
        "step": "install",
        "ok": True,
        "cell": 4,
        "values": {"command": "--set helm.production=true"},
    }
    failed = {**full, "ok": False}
    assert INSTALL.executed_by(full)
    assert not INSTALL.executed_by(partial) and not INSTALL.executed_by(failed)


def test_the_listed_commands_are_the_guides_and_uncovered_ones_show() -> None:
    commands = guide_commands()
    assert {c.step for c in commands} >= {
        "chart.lint",
        "chart.render",
        "install",
        "secrets.setup",
        "smoke",
    }
    assert any(
        c.command.startswith("kubectl create secret generic helm-policy-trust") for c in commands
    )
    coverage = guide_coverage(_report({"step": "chart.lint", "ok": True, "cell": 2, "values": {}}))
    assert [c.command.command for c in coverage if c.covered] == ["helm lint deploy/helm-chart"]
    assert coverage[1].executed_in == [("07-x", 2)]


def _executed(tmp_path: Path, block: str, *records: dict[str, object]) -> Path:
    """An executed notebook: a markdown cell with an "Equivalent commands" block, then one code
    cell per recorded step (its output metadata as ``record`` writes it)."""
    cells: list[dict[str, object]] = [
        {"cell_type": "markdown", "id": "m", "metadata": {},
         "source": f"# x\n\nEquivalent commands:\n\n```bash\n{block}```\n"},
    ]  # fmt: skip
    for n, payload in enumerate(records):
        output = {"output_type": "display_data", "data": {"text/plain": ""},
                  "metadata": {"helm_runbook": payload}}  # fmt: skip
        cells.append(
            {"cell_type": "code", "id": f"c{n}", "metadata": {}, "outputs": [output], "source": ""}
        )
    path = tmp_path / "07-x.ipynb"
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return path


TRUST = "kubectl create secret generic helm-policy-trust \\\n  --from-literal=HELM_POLICY_TRUST_PUBLIC_KEY=<64-char-ed25519-public-key-hex>"
INSTALL_RAN = "helm upgrade --install helm-ai-kernel deploy/helm-chart --namespace default \\\n  --set helm.production=true"


def test_an_equivalent_command_counts_only_when_a_passed_step_of_the_notebook_ran_it(
    tmp_path: Path,
) -> None:
    block = f"{TRUST}\nhelm upgrade --install helm-ai-kernel deploy/helm-chart ...   # printed by the step\n"
    ran = [{"step": "secrets.policy_trust", "ok": True, "seconds": 0, "values": {}, "command": TRUST},
           {"step": "install", "ok": True, "seconds": 0, "values": {}, "command": INSTALL_RAN}]  # fmt: skip
    assert unexecuted_equivalents(_executed(tmp_path, block, *ran)) == []
    invented = block + "kubectl delete pod -l app.kubernetes.io/instance=helm-ai-kernel\n"
    assert unexecuted_equivalents(_executed(tmp_path, invented, *ran)) == [
        "cell 0: kubectl delete pod -l app.kubernetes.io/instance=helm-ai-kernel"
    ]
    # a flag the step did not pass, a failed step and a skipped one are no evidence
    widened = "helm upgrade --install helm-ai-kernel deploy/helm-chart --reuse-values\n"
    assert unexecuted_equivalents(_executed(tmp_path, widened, *ran)) == [
        f"cell 0: {widened.strip()}"
    ]
    failed = {**ran[0], "ok": False}
    skipped = {**ran[0], "values": {"skipped": "needs the stand-in control plane"}}
    for record in (failed, skipped):
        assert unexecuted_equivalents(_executed(tmp_path, TRUST + "\n", record)) == [
            "cell 0: " + TRUST.replace(" \\\n  ", " ")
        ]


def test_shown_commands_compare_without_placeholders_comments_or_local_ports() -> None:
    assert command_words("HELM_RUNBOOK_SERVICE_API_KEY=... helm-runbook policy status http://127.0.0.1:8080  # hint") == [
        "helm-runbook", "policy", "status", "/"]  # fmt: skip
    assert command_words("kubectl port-forward svc/helm-ai-kernel 41233:8080 --namespace ops") == [
        "kubectl", "port-forward", "svc/helm-ai-kernel", ":8080", "--namespace", "ops"]  # fmt: skip
    assert command_words("helm-runbook verify-receipts http://h/api/v1/receipts --public-key <root.pub hex>") == [
        "helm-runbook", "verify-receipts", "/api/v1/receipts", "--public-key"]  # fmt: skip
    assert shell_commands("a \\\n  b\n\n# note\nc\n") == ["a b", "c"]


def test_the_page_says_run_as_written_or_which_flags_were_added_and_why() -> None:
    """A command rendered exactly as the guide writes it is "run as written"; an install that
    adds flags names each with the reason docs/guide-commands.yaml gives, and a flag without a
    reason shows as such (a runbook test requires none)."""
    skeleton = GuideCommand("s", "helm install r c --set helm.production=true --set a.b=<x>", "install",
                            flags=("helm.production=true",), also_step="chart.guide",
                            added_because={"helm.proxy.upstream": "the stand-in answers"})  # fmt: skip
    verbatim = {
        "step": "chart.guide",
        "ok": True,
        "cell": 2,
        "values": {"command": skeleton.command},
    }
    added = {"step": "install", "ok": True, "cell": 5, "values": {"command":
             "helm upgrade --install r c \\\n  --set helm.production=true \\\n  --set a.b=1 \\\n"
             "  --set helm.proxy.upstream=http://127.0.0.1:1/v1 \\\n  --set-json 'x.y=[1]'"}}  # fmt: skip
    report = {
        "notebooks": [
            {"notebook": "01-x", "steps": [verbatim]},
            {"notebook": "07-x", "steps": [added]},
        ]
    }
    path = Path(__file__).parent / "guide.yaml"
    try:
        path.write_text(json.dumps([{"section": "s", "command": skeleton.command, "step": "install",
                                     "also_step": "chart.guide", "flags": ["helm.production=true"],
                                     "added_because": dict(skeleton.added_because)}]))  # fmt: skip
        [item] = guide_coverage(report, path)
    finally:
        path.unlink()
    assert item.executed_in == [("01-x", 2), ("07-x", 5)] and item.as_written
    assert item.added == [[], ["helm.proxy.upstream", "x.y"]]
    assert item.unexplained() == ["x.y"]
    how = item.how()
    assert how.startswith("run as written (01-x cell 2); run with added flags (07-x cell 5)")
    assert "`helm.proxy.upstream`, because the stand-in answers" in how
    assert "`x.y`, because no reason recorded" in how
