# The bundled reference runtime as an image, for clusters that want to run it in place of
# upstream's ghcr.io/mindburn-labs/helm-ai-kernel. Same entrypoint and arguments as the chart
# expects; the postgres extra is in (helm.storage.type=postgres imports psycopg); runs as 65534 and works with a read-only root filesystem (/tmp is an emptyDir).
#   docker build -t helm-ai-kernel-reference:v0.8.4 .
#   helm install helm-ai-kernel deploy/helm-chart --set image.repository=helm-ai-kernel-reference
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY helm_runbook ./helm_runbook
RUN python -m venv /opt/helm && /opt/helm/bin/pip install --no-cache-dir -c constraints.txt '.[postgres]'

FROM python:3.11-slim-bookworm
COPY --from=build /opt/helm /opt/helm
ENV PATH=/opt/helm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    HELM_DATA_DIR=/var/lib/helm-ai-kernel
USER 65534:65534
EXPOSE 8080 8081 9090
ENTRYPOINT ["helm-ai-kernel"]
CMD ["serve", "--policy", "/etc/helm-ai-kernel/policy/serve-policy.toml", "--addr", "0.0.0.0", "--port", "8080", "--data-dir", "/var/lib/helm-ai-kernel"]
