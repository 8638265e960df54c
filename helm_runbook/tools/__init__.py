"""Operator tools: the runtime API client, offline receipt verification, policy keys and
signatures, the bounded load tool and ``diagnose``. Each is usable outside a runbook (the CLI
calls them); steps wrap them with a recorded result.
"""
