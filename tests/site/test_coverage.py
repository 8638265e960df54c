"""Guide coverage: a command counts only when a passed step ran it as the guide writes it."""

from __future__ import annotations

from helm_runbook.site.coverage import GuideCommand, guide_commands, guide_coverage

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
