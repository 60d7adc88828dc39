# fedchain: one image for every service (ledger, super node, edge node, console);
# docker-compose.yml picks the command. CPU-only torch, non-root, health-checked.
#
#   docker build -t fedchain:latest .
#
# Build arguments:
#   PYTHON_IMAGE     base image (default python:3.11-slim)
#   PIP_INDEX_URL    the Python package index (default PyPI)
#   TORCH_INDEX_URL  extra index holding the CPU builds of torch/torchvision
#                    (default https://download.pytorch.org/whl/cpu; "2.14.1+cpu" outranks
#                    PyPI's "2.14.1", which pulls ~4 GB of CUDA libraries: the CI image,
#                    built from the CUDA wheels on that machine's disk, is 6.1 GB)
#   WHEELHOUSE_URL   if set, install only from this directory/URL of wheels, no index
#                    (offline builds; CI serves .ci/cache/wheels over HTTP, see scripts/docker-build)
ARG PYTHON_IMAGE=python:3.11-slim

# 0. The dependency list alone, so that editing other parts of pyproject.toml (markers,
#    tool settings) does not invalidate the multi-GB dependency layer below.
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml docker/requirements.py /tmp/deps/
RUN python3 /tmp/deps/requirements.py /tmp/deps/pyproject.toml > /tmp/deps/requirements.txt

FROM ${PYTHON_IMAGE}

ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELHOUSE_URL=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# 1. Dependencies: this layer changes only when the dependency list does.
COPY --from=requirements /tmp/deps/requirements.txt /tmp/deps/requirements.txt
RUN set -eu; \
    python3 -m venv /opt/venv; \
    if [ -n "$WHEELHOUSE_URL" ]; then \
        pip install -q --no-index --find-links "$WHEELHOUSE_URL" --upgrade pip; \
        pip install -q --no-index --find-links "$WHEELHOUSE_URL" -r /tmp/deps/requirements.txt; \
    else \
        pip install -q --index-url "$PIP_INDEX_URL" --upgrade pip; \
        pip install -q --index-url "$PIP_INDEX_URL" --extra-index-url "$TORCH_INDEX_URL" \
            -r /tmp/deps/requirements.txt; \
    fi; \
    rm -rf /tmp/deps; \
    find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# 2. A non-root user and the directories the named volumes mount on (a new named
#    volume copies this ownership, so the services can write their state).
RUN set -eu; \
    useradd --uid 10001 --user-group --home-dir /home/fedchain --create-home \
        --shell /usr/sbin/nologin fedchain; \
    mkdir -p /var/lib/fedchain/ledger /var/lib/fedchain/msn /var/lib/fedchain/sn \
        /var/lib/fedchain/en /data; \
    chown -R fedchain:fedchain /var/lib/fedchain /data

# 3. The code: the only layer rebuilt when the source changes (seconds).
WORKDIR /app
COPY pyproject.toml README.md* ./
COPY proto ./proto
COPY shared ./shared
COPY services ./services
COPY fedchain ./fedchain
COPY docker/entrypoint.py docker/healthcheck.py /usr/local/lib/fedchain-docker/
RUN pip install -q --no-deps --no-build-isolation -e /app \
 && python -c "import fedchain.services.cli.main"

LABEL org.opencontainers.image.title="fedchain" \
      org.opencontainers.image.description="Federated learning run by a network of blockchain nodes" \
      org.opencontainers.image.licenses="Apache-2.0"
USER fedchain
ENV FEDCHAIN_HOST=0.0.0.0 \
    FEDCHAIN_DATA_DIR=/data \
    FEDCHAIN_STATE_DIR=/var/lib/fedchain/state
EXPOSE 8080 9080
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/lib/fedchain-docker/healthcheck.py"]
ENTRYPOINT ["python", "/usr/local/lib/fedchain-docker/entrypoint.py"]
CMD ["fedchain", "--help"]
