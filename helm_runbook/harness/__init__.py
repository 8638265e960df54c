"""Step plumbing: the result objects steps return, the records they leave in executed notebooks,
the runner that executes the runbooks, and the Jupyter kernel they run in.

Nothing here knows a chart, a target or the runtime's API: steps build on it, not the reverse.
"""
