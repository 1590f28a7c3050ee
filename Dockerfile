# syntax=docker/dockerfile:1.7
# Every ragfleet image, from one Dockerfile: the build arguments pick the workspace package.
# `make images` builds them all with Docker (BuildKit) or Podman/Buildah, e.g. by hand:
#   docker build --build-arg SERVICE=gateway --build-arg MODULE=ragfleet.gateway --build-arg PORT=8000 \
#     -t ragfleet/ragfleet-gateway:dev .
# Images: gateway, retrieval, llm-proxy, ingestion (the API; the Celery worker runs the same image
# as `python -m ragfleet.ingestion.worker`) and loadtests (the Locust suite and ragfleet-ops, for
# the chart's in-cluster benchmark Job). docs/deploy.md ("Images") tells the whole story.

# python:3.11-slim (Debian bookworm), pinned by digest so a rebuild gets the same base. The digest
# was taken from public Dockerfiles (no registry is reachable where this was written); refresh it
# with `docker buildx imagetools inspect python:3.11-slim` when updating the base. Where no
# registry is reachable, `make base-images` builds both bases from Debian packages and the uv wheel
# and `make images` passes them here.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
# The uv that wrote uv.lock (`uv --version`); `make base-images` reads the version from this line.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- manifests: every workspace member's pyproject.toml and uv.lock, nothing else ----
# No hand-kept list of members: the whole context comes in and everything but the manifests is
# dropped, so a new member can never be missed. The next stage copies this stage's result, whose
# content changes only when a manifest does, so a code change never rebuilds the dependencies.
FROM ${PYTHON_IMAGE} AS manifests
COPY . /src
RUN find /src -type f ! -name pyproject.toml ! -name uv.lock -delete \
    && find /src -type d -empty -delete

# ---- build: every image's virtualenv, in one stage ----
# One stage for all the images rather than one per image: each wheel is downloaded once and
# hnswlib compiled once (uv's cache lives through the whole step, whatever an engine does with
# cache mounts), and the engine commits one build layer instead of one per image. Each image then
# copies its own virtualenv out of it.
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# A compiler for the dependencies that ship no wheel (hnswlib); it stays in this stage. Python's
# headers too when the base lacks them (python:3.11-slim has them; Debian's python3 does not).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && { python3 -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
         || apt-get install --yes --no-install-recommends python3-dev; } \
    && rm -rf /var/lib/apt/lists/*
# hnswlib compiles with -march=native by default: an image built on an AVX-512 machine would die
# with SIGILL on an older node. CPU_TARGET is the oldest CPU the images run on (x86-64-v3 = AVX2,
# every x86 server of the last decade); x86-64 for any, or native for the build machine only.
ARG CPU_TARGET=x86-64-v3
ENV HNSWLIB_NO_NATIVE=1 \
    CFLAGS="-march=${CPU_TARGET} -mtune=generic" \
    CXXFLAGS="-march=${CPU_TARGET} -mtune=generic" \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# Runs a step trusting the optional extra CA bundle (the build secret `ca_bundle`); see the script.
COPY tools/containers/with-ca-bundle /usr/local/bin/with-ca-bundle
# The images to make virtualenvs for: workspace packages ragfleet-<service> (services/<name>, or
# loadtests). `make images` passes the ones it builds; an image whose service is not in the list
# fails at its COPY --from=build below.
ARG SERVICES="gateway retrieval llm-proxy ingestion loadtests"

# 1. Dependencies only: rebuilt when a pyproject.toml or uv.lock changes, not when the code does.
#    --locked, not --frozen: uv fails the build when the lock does not match the workspace it sees,
#    which is the check that no workspace member is missing from the build context. Relocatable
#    virtualenvs (scripts start through a relative path), because each is built at
#    /venvs/<service> and lives at /app/.venv in its image.
COPY --from=manifests /src/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    for service in ${SERVICES}; do \
      uv venv --quiet --relocatable "/venvs/${service}" \
      && UV_PROJECT_ENVIRONMENT="/venvs/${service}" with-ca-bundle \
         uv sync --locked --no-dev --no-install-workspace --package "ragfleet-${service}" \
      || exit 1; \
    done

# 2. The code, installed as wheels (not editable), so the final image needs no source tree. uv
#    installs only each service's package and the workspace packages it depends on.
COPY . ./
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    for service in ${SERVICES}; do \
      UV_PROJECT_ENVIRONMENT="/venvs/${service}" with-ca-bundle \
        uv sync --locked --no-dev --no-editable --package "ragfleet-${service}" \
      || exit 1; \
    done

# ---- runtime: the interpreter, the virtualenv, a non-root user; no compiler, no uv ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 ragfleet \
    && useradd --system --uid 10001 --gid ragfleet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ragfleet
# The workspace package this image runs: ragfleet-${SERVICE}.
ARG SERVICE=gateway
COPY --from=build /venvs/${SERVICE} /app/.venv
# `python -m ${MODULE}` is the default command (the chart always sets its own).
ARG MODULE=ragfleet.gateway
# The port the service listens on (documentation for `docker run -P`).
ARG PORT=8000
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
# OCI labels, last so that a new revision re-labels without rebuilding anything above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/ragfleet/ragfleet
LABEL org.opencontainers.image.title="ragfleet-${SERVICE}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
# An exec-form CMD cannot expand a build argument; the shell reads it from the environment and
# execs, so python still runs as PID 1 and gets SIGTERM.
CMD ["sh", "-c", "exec python -m \"$RAGFLEET_MODULE\""]
