# ragfleet — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
PYTEST_ARGS ?=

.PHONY: k8s-check render-manifests kind-up container-deps base-images images push test-containers deploy kind-down help deps run stop key test test-unit lint format clean loadtest loadtest-kind bench bench-retrieval bench-retrieval-http chaos eval test-security

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

# Modules marked integration are not imported here (ragfleet.testkit.pytest_plugin), and the plugins
# only those use are not loaded: most of this target's time was importing them.
test-unit: deps  ## only the tests that start no process (under a minute)
	$(UV) run pytest -m "not integration" -p no:schemathesis -p no:locust $(PYTEST_ARGS)

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

loadtest-kind:  ## Locust against kind through its ingress (:8080), with the cluster timeline; makes its own key in-cluster
	@command -v kubectl >/dev/null || { echo "loadtest-kind needs kubectl on PATH (docs/deploy.md)"; exit 2; }
	@# The key lives only in the cluster: made there if missing (then the gateway restarts to seed
	@# it), handed to Locust through the environment, never printed.
	@if ! $(KUBECTL) get secret ragfleet-admin-key >/dev/null 2>&1; then \
		$(UV) run ragfleet-ops create-key --context $(KIND_CONTEXT) --namespace ragfleet --secret ragfleet-admin-key && \
		$(KUBECTL) rollout restart deployment/ragfleet-gateway && \
		$(KUBECTL) rollout status deployment/ragfleet-gateway --timeout=300s; fi
	@set -eu; \
	$(KUBECTL) port-forward svc/ragfleet-retrieval $(KIND_METRICS_PORT):9090 >/dev/null 2>&1 & forward=$$!; \
	trap 'kill $$forward 2>/dev/null' EXIT; \
	for _ in $$(seq 30); do curl -fsS -o /dev/null http://127.0.0.1:$(KIND_METRICS_PORT)/metrics && break; sleep 1; done; \
	RAGFLEET_LOADTEST_API_KEY="$$($(KUBECTL) get secret ragfleet-admin-key -o jsonpath='{.data.admin-key}' | base64 --decode)" \
	$(UV) run python -m ragfleet.loadtests.run --scenario $(or $(SCENARIO),mixed) \
		--duration $(DURATION) --users $(USERS) --host $(HOST) --metrics-url http://127.0.0.1:$(KIND_METRICS_PORT)/metrics \
		--watch --kube-context $(KIND_CONTEXT) --namespace ragfleet --release ragfleet \
		--report-dir reports/kind-$$(date +%Y%m%d-%H%M%S) $(LOADTEST_ARGS)

bench: deps  ## benchmark suite, stored in benchmarks/history/; exit 4 on a regression (BENCH_ARGS=--quick)
	$(UV) run python -m ragfleet.loadtests.bench $(BENCH_ARGS)

bench-retrieval: deps  ## retrieval benchmark, 100k chunks: recall, QPS in process and over HTTP, embeddings (~3 min)
	$(UV) run python services/retrieval/bench/bench_retrieval.py $(BENCH_RETRIEVAL_ARGS)

RETRIEVAL_URL ?= http://127.0.0.1:8010
bench-retrieval-http: deps  ## retrieval HTTP QPS, cached and uncached, and its ratio to the store in process (needs a running retrieval at RETRIEVAL_URL)
	$(UV) run python services/retrieval/bench/bench_http.py --url $(RETRIEVAL_URL) --chunks 5000 \
		--seconds 10 --concurrency 32

eval: deps  ## retrieval quality (hit@k, MRR@10, nDCG@10) per mode and setting through the API; docs/eval-results.md (~1 min cached, ~15 min first run here)
	$(UV) run python -m ragfleet.eval $(EVAL_ARGS)

chaos: deps  ## faults under load on a stack of its own, one scenario at a time; report under reports/chaos-*
	$(UV) run python -m ragfleet.chaos $(CHAOS_ARGS)

# The kind loop uses the laptop's own tools (docker or podman, kind, kubectl, helm, uv): HELM=... or
# KIND=... to pick others; KIND_EXPERIMENTAL_PROVIDER=podman for podman.
HELM ?= helm
KIND ?= kind
KIND_CONTEXT := kind-ragfleet
KUBECTL = kubectl --context $(KIND_CONTEXT) --namespace ragfleet
KIND_METRICS_PORT ?= 19090
# Pinned controllers: ingress-nginx 1.15.1 (CVE-2025-1974 was fixed in 1.12.1; 1.15.1 carries the
# 2026 annotation-injection fix), metrics-server 0.8.1 (what the CPU HPAs read, on kind too).
INGRESS_NGINX_VERSION := v1.15.1
METRICS_SERVER_VERSION := v0.8.1

k8s-check: deps  ## helm lint/template, strict schema + CRD validation, policy, Checkov, goldens, overlays, drift, hadolint
	$(UV) run python -m ragfleet.k8scheck check

render-manifests: deps  ## regenerate kubernetes/base and the golden renders from the chart
	$(UV) run python -m ragfleet.k8scheck render

kind-up:  ## a kind cluster with ingress-nginx and metrics-server (needs docker or podman, kind, kubectl)
	$(KIND) create cluster --config kind/cluster.yaml
	kubectl --context $(KIND_CONTEXT) apply -f https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-$(INGRESS_NGINX_VERSION)/deploy/static/provider/kind/deploy.yaml
	kubectl --context $(KIND_CONTEXT) apply -f https://github.com/kubernetes-sigs/metrics-server/releases/download/$(METRICS_SERVER_VERSION)/components.yaml
	@# kind's kubelets serve self-signed certificates.
	kubectl --context $(KIND_CONTEXT) -n kube-system patch deployment metrics-server --type=json \
		-p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
	@# `apply` has made the Deployments: rollout status waits for them (no race with pods not yet created).
	kubectl --context $(KIND_CONTEXT) -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s
	kubectl --context $(KIND_CONTEXT) -n kube-system rollout status deployment/metrics-server --timeout=300s

# Images and containers (docs/deploy.md, "Images"). CONTAINER_ENGINE=docker|podman (detected when
# empty); REGISTRY/TAG name the images; EXTRA_CA_BUNDLE=path is trusted by the build steps (default:
# the file SSL_CERT_FILE names, when set), handed in as a build secret, never kept in an image;
# IMAGES="gateway retrieval" builds (and pushes) only those (default: all five).
CONTAINER_ENGINE ?=
REGISTRY ?= ragfleet
TAG ?= dev
EXTRA_CA_BUNDLE ?=
IMAGES ?=
CONTAINERS = $(UV) run python -m ragfleet.containers $(if $(CONTAINER_ENGINE),--engine $(CONTAINER_ENGINE))

container-deps:  ## install podman, buildah, runc, debootstrap where missing (as root) and configure podman
	@bash tools/bootstrap.sh --containers

base-images: container-deps  ## build the base images locally (Debian's Python 3.11, uv from its wheel, NGINX, Redis): no registry needed
	$(CONTAINERS) base-images

images: container-deps  ## build every image from ./Dockerfile (on make base-images' bases when present); sizes reported
	$(CONTAINERS) images --registry $(REGISTRY) --tag $(TAG) $(if $(EXTRA_CA_BUNDLE),--extra-ca-bundle $(EXTRA_CA_BUNDLE)) $(if $(IMAGES),--only $(IMAGES))
	@if command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx ragfleet; then \
		for s in $(or $(IMAGES),gateway retrieval llm-proxy ingestion loadtests); do \
			kind load docker-image --name ragfleet $(REGISTRY)/ragfleet-$$s:$(TAG) || exit 1; done; fi

test-containers: container-deps  ## the rendered chart's workloads as podman containers + end-to-end smoke through NGINX (after make images)
	$(CONTAINERS) test --registry $(REGISTRY) --tag $(TAG)

push: images  ## build, then push every image: make push REGISTRY=registry.example.com/team TAG=1.0.0
	$(CONTAINERS) push --registry $(REGISTRY) --tag $(TAG) $(if $(IMAGES),--only $(IMAGES))

deploy:  ## helm upgrade --install on kind with your own helm (no root, no bootstrap), then wait for every rollout
	@for tool in $(HELM) kubectl $(UV); do command -v $$tool >/dev/null || \
		{ echo "make deploy needs $$tool on PATH (docs/deploy.md lists what a laptop needs)"; exit 2; }; done
	kubectl --context $(KIND_CONTEXT) create namespace ragfleet --dry-run=client -o yaml | kubectl --context $(KIND_CONTEXT) apply -f -
	@# The admin key the gateway seeds at start (kind/values-kind.yaml names this Secret); never printed.
	$(UV) run ragfleet-ops create-key --context $(KIND_CONTEXT) --namespace ragfleet --secret ragfleet-admin-key
	$(HELM) upgrade --install ragfleet charts/ragfleet --kube-context $(KIND_CONTEXT) --namespace ragfleet \
		-f kind/values-kind.yaml --set image.tag=$(TAG) --wait --timeout 10m
	$(KUBECTL) rollout status deployment --selector app.kubernetes.io/instance=ragfleet --timeout=300s
	$(KUBECTL) rollout status statefulset --selector app.kubernetes.io/instance=ragfleet --timeout=300s

kind-down:  ## delete the kind cluster
	$(KIND) delete cluster --name ragfleet
