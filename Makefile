# ragfleet — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
PYTEST_ARGS ?=

.PHONY: k8s-check render-manifests kind-up container-deps base-images images push deploy kind-down help deps run stop key test test-unit lint format clean loadtest loadtest-kind bench bench-retrieval bench-retrieval-http chaos test-security

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps:  ## install uv, the virtualenv, Redis, NGINX, Chromium and wrk where missing
	@bash tools/bootstrap.sh

run: deps  ## start the whole suite on this machine (embedded index); Ctrl-C stops it
	$(UV) run python -m ragfleet.devstack run

stop:  ## stop a `make run` started in another terminal
	$(UV) run python -m ragfleet.devstack stop

TENANT ?= default
COLLECTIONS ?= *
RUN_DIR ?= $(or $(RAGFLEET_DEV_RUN_DIR),.run)

key: deps  ## a new API key for the running `make run` (TENANT=default COLLECTIONS='*'), printed once
	@$(UV) run python -m ragfleet.gateway.keys --run-dir "$(RUN_DIR)" create --tenant "$(TENANT)" \
		--collections "$(COLLECTIONS)" --name make-key

test: deps  ## unit, integration and end-to-end tests (starts real processes on loopback)
	$(UV) run pytest $(PYTEST_ARGS)

test-unit: deps  ## only the tests that start no process
	$(UV) run pytest -m "not integration" $(PYTEST_ARGS)

test-security: deps  ## hostile input (schemathesis + targeted), tenant isolation, pod policy (docs/security.md)
	$(UV) run pytest services/gateway/tests/test_hostile_input.py services/gateway/tests/test_schemathesis.py \
		services/gateway/tests/test_tenant_isolation.py tools/k8scheck/tests/test_policy.py $(PYTEST_ARGS)

lint: deps  ## ruff (lint + format check) and mypy (on the sources; tests are linted by ruff)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy services/*/src tools/*/src loadtests/src

format:  ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

clean:  ## remove run state (logs, Redis and index data under .run/)
	rm -rf .run

SCENARIO ?= search
DURATION ?= 60s
USERS ?= 50
HOST ?= http://127.0.0.1:8080

loadtest: deps  ## run a Locust scenario headless against `make run` (SCENARIO=search DURATION=60s USERS=50)
	$(UV) run python -m ragfleet.loadtests.run --scenario $(SCENARIO) --duration $(DURATION) --users $(USERS) \
		--host $(HOST) --report-dir reports/$(SCENARIO)-$$(date +%Y%m%d-%H%M%S) $(LOADTEST_ARGS)

loadtest-kind: deps  ## the same against kind, with the cluster timeline (port-forward ingress + retrieval; KEY=api key)
	RAGFLEET_LOADTEST_API_KEY="$(KEY)" $(UV) run python -m ragfleet.loadtests.run --scenario $(or $(SCENARIO),mixed) \
		--duration $(DURATION) --users $(USERS) --host $(HOST) --metrics-url http://127.0.0.1:8010/metrics \
		--watch --kube-context $(KIND_CONTEXT) --namespace ragfleet --release ragfleet \
		--report-dir reports/kind-$$(date +%Y%m%d-%H%M%S) $(LOADTEST_ARGS)

bench: deps  ## benchmark suite, stored in benchmarks/history/; exit 4 on a regression (BENCH_ARGS=--quick)
	$(UV) run python -m ragfleet.loadtests.bench $(BENCH_ARGS)

bench-retrieval: deps  ## retrieval benchmark, 100k chunks: recall, QPS in process and over HTTP, embeddings (~3 min)
	$(UV) run python services/retrieval/bench/bench_retrieval.py $(BENCH_RETRIEVAL_ARGS)

bench-retrieval-http: deps  ## retrieval HTTP QPS, cached and uncached (needs a running retrieval on :8010)
	$(UV) run python services/retrieval/bench/bench_http.py --url http://127.0.0.1:8010 --chunks 5000 \
		--seconds 10 --concurrency 32

chaos: deps  ## faults under load on a stack of its own, one scenario at a time; report under reports/chaos-*
	$(UV) run python -m ragfleet.chaos $(CHAOS_ARGS)

HELM := .tools/kubectl-layer-v32-2.1.0/helm
KIND_CONTEXT := kind-ragfleet

k8s-check: deps  ## helm lint/template, strict schema + CRD validation, policy, overlays, drift, hadolint
	$(UV) run python -m ragfleet.k8scheck check

render-manifests: deps  ## regenerate kubernetes/base from the chart
	$(UV) run python -m ragfleet.k8scheck render

kind-up:  ## a kind cluster with ingress-nginx (needs docker, kind, kubectl: not on this build machine)
	kind create cluster --config kind/cluster.yaml
	kubectl --context $(KIND_CONTEXT) apply -f https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.0/deploy/static/provider/kind/deploy.yaml
	kubectl --context $(KIND_CONTEXT) -n ingress-nginx wait --for=condition=ready pod \
		-l app.kubernetes.io/component=controller --timeout=300s

# Images and containers (docs/deploy.md, "Images"). CONTAINER_ENGINE=docker|podman (detected when
# empty); REGISTRY/TAG name the images; EXTRA_CA_BUNDLE=path is trusted by the build steps (default:
# the file SSL_CERT_FILE names, when set), handed in as a build secret, never kept in an image.
CONTAINER_ENGINE ?=
REGISTRY ?= ragfleet
TAG ?= dev
EXTRA_CA_BUNDLE ?=
CONTAINERS = $(UV) run python -m ragfleet.containers $(if $(CONTAINER_ENGINE),--engine $(CONTAINER_ENGINE))

container-deps:  ## install podman, buildah, runc, debootstrap where missing (as root) and configure podman
	@bash tools/bootstrap.sh --containers

base-images: container-deps  ## build the base images locally (Debian's Python 3.11, uv from its wheel, NGINX, Redis): no registry needed
	$(CONTAINERS) base-images

images: container-deps  ## build every image from ./Dockerfile (on make base-images' bases when present); sizes reported
	$(CONTAINERS) images --registry $(REGISTRY) --tag $(TAG) $(if $(EXTRA_CA_BUNDLE),--extra-ca-bundle $(EXTRA_CA_BUNDLE))
	@if command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx ragfleet; then \
		for s in gateway retrieval llm-proxy ingestion loadtests; do \
			kind load docker-image --name ragfleet $(REGISTRY)/ragfleet-$$s:$(TAG) || exit 1; done; fi

push: images  ## build, then push every image: make push REGISTRY=registry.example.com/team TAG=1.0.0
	$(CONTAINERS) push --registry $(REGISTRY) --tag $(TAG)

deploy: deps  ## helm install on kind, then wait for every rollout
	$(UV) run python -m ragfleet.k8scheck tools
	$(HELM) upgrade --install ragfleet charts/ragfleet --kube-context $(KIND_CONTEXT) --namespace ragfleet \
		--create-namespace -f kind/values-kind.yaml --set image.tag=dev --wait --timeout 10m
	$(UV) run ragfleet-ops wait --context $(KIND_CONTEXT) --namespace ragfleet --release ragfleet --timeout 300

kind-down:  ## delete the kind cluster
	kind delete cluster --name ragfleet
