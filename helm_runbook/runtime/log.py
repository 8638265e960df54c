"""Structured log lines on stderr (``HELM_LOG_FORMAT=json|text``), as upstream writes them.

Never pass key material here: log fingerprints and public keys only.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

_format = "json"


def configure(log_format: str) -> None:
    global _format
    _format = log_format


def log(msg: str, *, level: str = "INFO", **fields: Any) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _format == "json":
        line = json.dumps({"time": stamp, "level": level, "msg": msg, **fields}, default=str)
    else:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{stamp} {level} {msg} {extra}".rstrip()
    print(line, file=sys.stderr, flush=True)
