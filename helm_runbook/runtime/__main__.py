"""``python -m helm_runbook.runtime serve ...`` runs the same CLI as ``helm-ai-kernel``."""

from helm_runbook.runtime.cli import main

raise SystemExit(main())
