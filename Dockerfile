# One image for every CRM service; the command picks the service:
#
#   docker build -t crm-backend .
#   docker run crm-backend serve followups       # run one service (distributed mode)
#   docker run crm-backend migrate followups     # upgrade its schema, then exit
#
# Configuration comes from environment variables only (docs/operations.md lists them).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/crm
ENV PATH=/opt/crm/bin:$PATH
WORKDIR /app

# Dependencies first, read from pyproject.toml: this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself. It is installed in place (-e): the services read
# docs/openapi/*.yaml and services/<name>/migrations/ relative to the source tree,
# which a copy into site-packages would leave behind.
COPY crm ./crm
COPY crm_common ./crm_common
COPY services ./services
COPY docs/openapi ./docs/openapi
# the web console's static files, served by crm_common/console.py (the Kubernetes Ingress sends page addresses here)
COPY console ./console
RUN pip install --no-deps -e . \
    && python -m compileall -q crm crm_common services

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE}
ARG CRM_UID=10001
LABEL org.opencontainers.image.title="crm-backend" \
      org.opencontainers.image.description="CRM back end: customers, followups, alerts and reports as nameko services"
RUN groupadd --system --gid ${CRM_UID} crm \
    && useradd --system --uid ${CRM_UID} --gid crm --home-dir /app --no-create-home --shell /usr/sbin/nologin crm
COPY --from=build /opt/crm /opt/crm
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/crm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CRM_LOG_LEVEL=INFO \
    CRM_HEALTH_PORT=8001
# numeric user: Kubernetes' runAsNonRoot can verify it
USER ${CRM_UID}:${CRM_UID}
# customers, followups, alerts, reports (each service's default HTTP port)
EXPOSE 8001 8002 8003 8004

# /health answers 200 when the service's database and broker answer, 503 otherwise.
# The port differs per service: set CRM_HEALTH_PORT with the service (compose and k8s do).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CRM_HEALTH_PORT', '8001'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]

# SIGTERM (docker stop, Kubernetes) stops the service gracefully: see docs/operations.md.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "crm"]
CMD ["serve", "customers"]
