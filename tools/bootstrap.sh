#!/usr/bin/env bash
# Installs what ragfleet needs on a fresh Linux machine with Python 3.11: uv, the project's
# virtualenv, Redis, NGINX and Chromium (for the console's browser tests); with --containers also
# podman, buildah, runc and debootstrap. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  if [ -z "${RAGFLEET_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    export RAGFLEET_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (from PyPI)"
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  say "installing redis-server (Debian package)"
  apt_install redis-server || { echo "redis-server is missing and could not be installed: install Redis 6+ and retry" >&2; exit 1; }
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  say "installing nginx (Debian package)"
  apt_install nginx-light || echo "nginx could not be installed: make run will serve one gateway directly" >&2
fi

# Debian's chromium, driven by Playwright's library: the tests never download a browser of their own.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium (Debian package, for the console's browser tests)"
  apt_install chromium || echo "chromium could not be installed: the console's browser tests will be skipped" >&2
fi

# wrk: the HTTP load generator of `make bench-retrieval` (C, so it is not what limits the figure).
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk (Debian package, for the HTTP benchmarks)"
  apt_install wrk || echo "wrk could not be installed: bench-retrieval falls back to a Python load generator" >&2
fi

# Containers (`make images`, `make test-containers`, CI): only with --containers, or when asked
# for by RAGFLEET_CONTAINERS=1, so that `make run` never installs a container engine.
if [ "${1:-}" = "--containers" ] || [ -n "${RAGFLEET_CONTAINERS:-}" ]; then
  # Podman unless Docker was asked for, or answers and podman was not asked for.
  want_podman=1
  case "${CONTAINER_ENGINE:-}" in
    docker) want_podman= ;;
    podman) ;;
    *) if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then want_podman=; fi ;;
  esac
  if [ -n "$want_podman" ]; then
    # package:file it installs. netavark and aardvark-dns (Service names resolve on the test
    # network) are only recommended, and --no-install-recommends would leave them out.
    missing=()
    for pair in podman:/usr/bin/podman buildah:/usr/bin/buildah runc:/usr/sbin/runc \
      debootstrap:/usr/sbin/debootstrap netavark:/usr/lib/podman/netavark \
      aardvark-dns:/usr/lib/podman/aardvark-dns iptables:/usr/sbin/iptables; do
      [ -e "${pair#*:}" ] || missing+=("${pair%%:*}")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      say "installing ${missing[*]} (Debian packages, for the images and the container tests)"
      apt_install "${missing[@]}" || { echo "could not install ${missing[*]}: install podman, buildah, runc and debootstrap, or set CONTAINER_ENGINE=docker" >&2; exit 1; }
    fi
    # Podman's default runtime (crun) refuses hybrid-cgroup kernels that runc runs on, and its
    # default ulimits make runc fail a setrlimit: both settings go into the system
    # containers.conf once, without touching anything else in it.
    if [ "$(id -u)" -eq 0 ]; then
      python3 tools/containers/configure_podman.py /etc/containers/containers.conf
    fi
  fi
fi

say "syncing the virtualenv (uv sync --frozen)"
uv sync --all-packages --frozen --quiet
