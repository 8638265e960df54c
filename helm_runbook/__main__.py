"""``python -m helm_runbook`` runs the ``helm-runbook`` CLI."""

from helm_runbook.cli import main

raise SystemExit(main())
