"""The bundled reference runtime: serves the HELM AI Kernel's HTTP contract (upstream v0.8.4)."""

from __future__ import annotations

KERNEL_VERSION = "0.8.4"
