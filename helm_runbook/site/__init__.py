"""The docs site, built from the executed runbooks and the code.

``build`` runs mkdocs over the docs sources and the executed copies; ``pages`` writes the
generated pages: ``reference`` (chart values, routes, guards), ``envpage`` (the runtime
environment), ``results`` (the results page and each runbook's banner), ``coverage`` (which of
the guide's commands ran) and ``topology`` (the release's objects as a picture). ``markup`` holds
what they share.
"""
