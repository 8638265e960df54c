"""The CEL sandbox's worker process: one JSON line in (``{"e": expression, "i": input}``), one
JSON line out (``{"value": bool}``, ``{"type": name}`` for a non-boolean result, or
``{"error": why}``). The CEL binding holds the GIL while it evaluates and cannot be interrupted,
so an expression that may run long is evaluated here, where the runtime can kill it at its
wall-clock limit (``compiler.CelSandbox``); it exits when its input closes."""

from __future__ import annotations

import json
import sys
from typing import Any

_MAX_PROGRAMS = 64


def _answer(programs: dict[str, Any], line: bytes) -> dict[str, Any]:
    from helm_runbook.runtime.policy.compiler import load_cel

    try:
        request = json.loads(line)
        expression = request["e"]
        program = programs.get(expression)
        if program is None:
            if len(programs) >= _MAX_PROGRAMS:
                programs.clear()
            program = programs[expression] = load_cel().compile(expression)
        result = program.execute(request["i"])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a library panic (pyo3) is a BaseException
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if isinstance(result, bool):
        return {"value": result}
    return {"type": type(result).__name__}


def main() -> None:
    from helm_runbook.runtime.policy.compiler import load_cel

    load_cel()  # before the ready line: the first expression's deadline is not spent importing
    programs: dict[str, Any] = {}
    out = sys.stdout.buffer
    out.write(b"{}\n")
    out.flush()
    for line in sys.stdin.buffer:
        out.write(json.dumps(_answer(programs, line)).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
