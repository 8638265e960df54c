"""What the local target and the tests run in place of a cluster's neighbours: the stand-in
OpenAI-compatible upstream and policy control plane, the runtime as a child process, a real
Prometheus and nginx configured from the rendered objects, and hostile clients that attack the
runtime's edge. None of it is used against a real cluster.
"""
