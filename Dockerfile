# syntax=docker/dockerfile:1.7
# Every ragfleet image, from one Dockerfile: the build arguments pick the workspace package.
# Build from the repository root (the uv workspace is the build context), e.g.
#   docker build --build-arg SERVICE=gateway --build-arg MODULE=ragfleet.gateway --build-arg PORT=8000 \
#     -t ragfleet/ragfleet-gateway:dev .
# `make images` builds them all: gateway, retrieval, llm-proxy, ingestion (the API; the Celery
# worker runs the same image as `python -m ragfleet.ingestion.worker`) and loadtests (the Locust
# suite and ragfleet-ops, for the chart's in-cluster benchmark Job).

# python:3.11-slim (Debian bookworm), pinned by digest so a rebuild gets the same base. The digest
# was taken from public Dockerfiles (no registry is reachable where this was written); refresh it
# with `docker buildx imagetools inspect python:3.11-slim` when updating the base.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
# The uv that wrote uv.lock here (uv --version); the lock is read with --frozen.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: a virtualenv with the dependencies, then the code ----
FROM ${PYTHON_IMAGE} AS build
# The workspace package to install: ragfleet-${SERVICE} (services/<name>, or loadtests).
ARG SERVICE=gateway
COPY --from=uv /uv /usr/local/bin/uv
# A compiler for the dependencies that ship no wheel (hnswlib); it stays in this stage.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# 1. Dependencies only: this layer is rebuilt when a pyproject.toml or uv.lock changes, not
#    when the code does. uv reads every workspace member's pyproject.toml, hence the list (a new member adds its line).
COPY pyproject.toml uv.lock ./
COPY services/common/pyproject.toml services/common/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/retrieval/pyproject.toml services/retrieval/
COPY services/llm-proxy/pyproject.toml services/llm-proxy/
COPY services/ingestion/pyproject.toml services/ingestion/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY tools/ops/pyproject.toml tools/ops/
COPY tools/k8scheck/pyproject.toml tools/k8scheck/
COPY loadtests/pyproject.toml loadtests/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "ragfleet-${SERVICE}"

# 2. The code, installed as wheels (not editable), so the final image needs no source tree. All
#    workspace sources are copied (.dockerignore keeps only pyproject.toml and src/), and uv
#    installs only ${SERVICE}'s package and the workspace packages it depends on: a code change
#    elsewhere re-runs this cheap step, never the dependency layer above.
COPY services/ services/
COPY tools/ tools/
COPY loadtests/ loadtests/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "ragfleet-${SERVICE}"

# ---- runtime: the interpreter, the virtualenv, a non-root user; no compiler, no uv ----
FROM ${PYTHON_IMAGE} AS runtime
# `python -m ${MODULE}` is the default command (the chart always sets its own).
ARG MODULE=ragfleet.gateway
# The port the service listens on (documentation for `docker run -P`).
ARG PORT=8000
RUN groupadd --system --gid 10001 ragfleet \
    && useradd --system --uid 10001 --gid ragfleet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ragfleet
COPY --from=build /app/.venv /app/.venv
# The chart mounts the root filesystem read-only: caches go to the /tmp emptyDir.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    RAGFLEET_MODULE=${MODULE}
USER 10001:10001
WORKDIR /tmp
EXPOSE ${PORT}
# An exec-form CMD cannot expand a build argument; the shell reads it from the environment and
# execs, so python still runs as PID 1 and gets SIGTERM.
CMD ["sh", "-c", "exec python -m \"$RAGFLEET_MODULE\""]
