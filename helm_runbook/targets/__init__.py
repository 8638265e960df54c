"""Deployment targets: ``local`` (the rendered pod in a bubblewrap sandbox) and, later, ``kube``."""
