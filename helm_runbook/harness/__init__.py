"""Step plumbing: the result objects steps return, the records they leave in executed notebooks,
the papermill engine that executes them and the Jupyter kernel they run in.

Nothing here knows a chart, a target, a site or the runtime's API: steps build on it, not the
reverse. The runner that executes the runbooks (``helm_runbook.runner``) is an application over
steps, targets and the site, beside the CLI.
"""
