# helm-runbook: thin verbs. README names the two that matter: `make runbook` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
export NO_MKDOCS_2_WARNING := 1
# Bytecode: where PYTHONDONTWRITEBYTECODE=1 (the Dockerfile sets it, so do many CI images) Python
# writes no .pyc, and every process the verbs start (each pytest worker, notebook kernel and
# runtime pod) compiled its imports from source on every run: about 2 s of CPU per pytest
# process, 0.3 s per kernel, 0.2 s per pod start. The verbs let Python cache what it imports in
# .venv and the checkout (about 2 s once, against 15 s for compiling every installed package at
# setup); `compile` compiles the checkout's modules up front, because a pod's sandbox mounts the
# checkout read-only and could never write them.
unexport PYTHONDONTWRITEBYTECODE

.DEFAULT_GOAL := help
.PHONY: help setup compile system-deps runbook-deps node-deps check fmt test test-fast runbook lab docs helm-chart-smoke bench bench-site bench-main-job publish clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the project installed (editable, all extras); idempotent

# The installer is uv (seconds instead of about a minute with pip): the one on PATH, else uv
# installed into .venv by pip at its constraints.txt pin. pip installs when uv cannot be had or
# fails; both take the same constraints file, so the environment is the same either way.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@uv=$$(command -v uv || true); ok=""; \
	if [ -z "$$uv" ] && $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt uv >/dev/null 2>&1; then uv=$(BIN)/uv; fi; \
	if [ -n "$$uv" ]; then echo "installing with $$uv"; \
	  "$$uv" pip install -q --python $(BIN)/python -c constraints.txt -e '.[all]' && ok=1 || echo "uv failed: installing with pip instead"; \
	else echo "uv unavailable: installing with pip"; fi; \
	[ -n "$$ok" ] || $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[all]'
	$(BIN)/python -c 'from helm_runbook.harness.lab import ensure_kernel; ensure_kernel()'
	@touch $@

compile: setup ## bytecode for the checkout's modules (only those changed since), which a pod's read-only sandbox cannot write
	@$(BIN)/python -m compileall -q -j0 helm_runbook tests benchmarks >/dev/null

# Debian packages: bubblewrap gives the local target's pod its mounts (runbooks and tests);
# postgresql is the server the PostgreSQL store tests start (pg_ctlcluster marks it installed);
# prometheus scrapes the release and nginx serves its Ingress (runbook 09); graphviz lays out the
# release topology (runbook 03 and the overview); chromium is the browser the docs-site test drives
# and node/npm install axe-core, which it runs on every page (tests only). A temporary policy-rc.d
# keeps Debian from also starting them as system services (on every interface) when installed.
RUNBOOK_DEPS := bwrap:bubblewrap prometheus:prometheus nginx:nginx dot:graphviz
TEST_DEPS := $(RUNBOOK_DEPS) pg_ctlcluster:postgresql
BROWSER_DEPS := chromium:chromium node:nodejs npm:npm
define install_missing
	@missing=""; for dep in $(1); do command -v $${dep%%:*} >/dev/null || missing="$$missing $${dep##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; status=$$?; \
	    [ -n "$$guard" ] && rm -f /usr/sbin/policy-rc.d; [ $$status = 0 ] || exit $$status; \
	  else echo "missing Debian packages:$$missing (run: sudo apt-get install -y$$missing)"; exit 1; fi; \
	fi
endef
system-deps: ## install missing Debian packages (bubblewrap, prometheus, nginx, postgresql; chromium, whose absence only skips the browser test)
	$(call install_missing,$(TEST_DEPS))
	-$(call install_missing,$(BROWSER_DEPS))

runbook-deps:
	$(call install_missing,$(RUNBOOK_DEPS))

# axe-core for the browser test, at package-lock.json's pin (npm's registry; no browser download).
node-deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; \
	else echo "npm missing: the browser test cannot run axe-core (make system-deps installs Debian's npm)"; fi

check: setup ## read-only checks: ruff format --check, ruff, mypy, actionlint + zizmor on the workflows
	$(BIN)/ruff format --check helm_runbook tests benchmarks
	$(BIN)/ruff check helm_runbook tests benchmarks
	$(BIN)/mypy helm_runbook
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/zizmor --offline --quiet .github/workflows/

fmt: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix helm_runbook tests benchmarks
	$(BIN)/ruff format helm_runbook tests benchmarks

# pytest-xdist workers: the tests mostly wait on processes they start (pods, kernels, servers),
# so more workers than the 2 cores overlap those waits; the tests that read the one runbook run
# share a worker (--dist loadgroup, tests/notebooks/conftest.py). TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 3
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
test: setup compile system-deps node-deps ## run the test suite (what CI runs)
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: setup compile ## the suite without notebooks, PostgreSQL or the browser (the inner loop; CI runs `test`)
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not notebooks and not postgres"

runbook: setup compile runbook-deps ## the main job: execute every runbook against the bundled runtime, build the docs
	$(BIN)/python -m helm_runbook.runner $(RUNBOOK_ARGS)

lab: setup runbook-deps ## JupyterLab on 127.0.0.1 (port LAB_PORT, 8888) in notebooks/, to run the runbooks by hand
	$(BIN)/helm-runbook lab

helm-chart-smoke: setup ## lint, render and validate the chart; every guard must refuse with its message
	$(BIN)/python -m helm_runbook.chart.smoke

bench: setup ## print benchmark figures (hot path, HTTP, proxy latency, evidence packs, hostile packs, CEL bounds, stores under load, hostile clients)
	$(BIN)/python benchmarks/hot_path.py
	$(BIN)/python benchmarks/proxy_evidence.py
	$(BIN)/python benchmarks/evidence_limits.py
	$(BIN)/python benchmarks/cel_limits.py
	$(BIN)/python benchmarks/chart_render.py
	$(BIN)/python benchmarks/store_load.py
	$(BIN)/python benchmarks/hostile_clients.py

bench-site: setup ## Lighthouse's four scores for every page of build/site, mobile and desktop, light and dark scheme (make runbook first; about 40 min)
	cd benchmarks/lighthouse && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	$(BIN)/python benchmarks/lighthouse_site.py $(BENCH_ARGS)

bench-main-job: setup ## time the main job in a scratch clone: fresh make setup + make runbook, warm runs, each notebook, the empty-notebook floor (minutes)
	$(BIN)/python benchmarks/main_job.py $(BENCH_ARGS)

publish: setup ## add build/site to the gh-pages branch as one version (PUBLISH_ARGS: --version, --alias, --repo, --branch); refuses a failed or uncommitted run
	$(BIN)/helm-runbook publish $(PUBLISH_ARGS)

clean: ## stop the local target (helm-runbook stop: also what a deleted build/ left running), remove build artefacts and JupyterLab checkpoints (keeps .venv)
	-@test ! -x $(BIN)/helm-runbook || $(BIN)/helm-runbook stop
	rm -rf build site .cache .pytest_cache .mypy_cache .ruff_cache node_modules benchmarks/lighthouse/node_modules
	find . -path ./$(VENV) -prune -o -type d -name .ipynb_checkpoints -prune -exec rm -rf {} +
