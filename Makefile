# poolsieve - the README's commands. `make demo` and `make ci` work on a fresh clone.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup browser postgres demo ci test test-slow test-unit test-integration test-e2e test-hostile test-fast dev screenshots lint format bench-dedup bench-embed bench-datacomp clean

setup: $(STAMP) browser postgres

# the browser test drives Debian's chromium (Playwright cannot download browsers here)
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# the Postgres-backed instance's test starts Debian's PostgreSQL server itself (no service)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# torch/torchvision are pinned and installed first: pip takes these builds from this machine's disk.
# pip's output (its warnings about this machine's pip config, setuptools' banners) goes to
# $(INSTALL_LOG), printed in full when a step fails.
INSTALL_LOG := $(VENV)/install.log
PIP_INSTALL := $(PY) -m pip install --quiet
$(STAMP): pyproject.toml
	@python3 -m venv $(VENV)
	@echo "setup: installing torch and poolsieve[dev,postgres] into $(VENV) (pip's output: $(INSTALL_LOG))"
	@{ $(PIP_INSTALL) --upgrade pip \
	  && $(PIP_INSTALL) torch==2.14.1 torchvision==0.29.1 \
	  && $(PIP_INSTALL) -e '.[dev,postgres]'; } >$(INSTALL_LOG) 2>&1 \
	  || { cat $(INSTALL_LOG); echo "setup: pip failed (its output above, kept in $(INSTALL_LOG))"; exit 1; }
	@touch $(STAMP)
	@echo "setup: done ($(VENV) ready; pip's warnings are in $(INSTALL_LOG))"

demo: setup          ## generate the demo pool and run the main job on it
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/poolsieve demo

ci: setup            ## every test, the slow ones included: what CI's .ci/run runs (~30 min on 2 cores)
	$(PY) -m pytest

test: setup          ## every test but the slow ones (marked slow; make ci runs them): under 20 min
	$(PY) -m pytest -m "not slow"

test-slow: setup     ## only the slow ones: fault injection, reproducibility, whole demo, browser, hostile, wheel
	$(PY) -m pytest -m slow

test-unit: setup     ## the unit lane: no CLIP training, no img2dataset, no server (~1 min)
	$(PY) -m pytest tests/unit

test-integration: setup   ## training, downloads, servers, Dagster runs with local resources
	$(PY) -m pytest tests/integration

test-e2e: setup      ## the console script and the UI, as a user runs them
	$(PY) -m pytest tests/e2e

test-hostile: setup  ## bad files and URLs beside good ones: every row accounted for
	$(PY) -m pytest tests/hostile

test-fast: test-unit

# the demo's code location (production's, configured by POOLSIEVE_*: -w workspace.yaml). dagster dev
# through `poolsieve dev`: SIGTERM stops it (and its children) even when started in the background
dev: setup           ## the Dagster UI on http://127.0.0.1:3000 over the demo's lake
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/poolsieve dev -m poolsieve_demo.definitions -h 127.0.0.1 -p 3000

screenshots: setup   ## the README's UI screenshots (docs/screenshots/), from the demo's runs: after make demo
	$(PY) scripts/screenshots.py --home $(DAGSTER_HOME) --lake $(CURDIR)/lake

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-dedup: setup   ## the dedup benchmark (ROWS=10000000 for the 10M run)
	$(PY) bench/dedup/run.py --rows $(or $(ROWS),1000000)

bench-embed: setup   ## the embedding benchmark (TARS='lake/shard_images/*/*.tar' for the demo's images)
	$(PY) bench/embed/run.py $(if $(TARS),--models tiny --tars '$(TARS)')

bench-datacomp: setup   ## the demo's strategy comparison over 3 training seeds (~40 min on 2 cores)
	$(PY) bench/datacomp_demo/run.py --seeds $(or $(SEEDS),0,1,2)

.PHONY: bench-pool
bench-pool: setup   ## DataComp small's pool (12.8M rows) through the graph vs polars (ROWS=1280000 FILES=16 for a quick run)
	$(PY) bench/pool/run.py --rows $(or $(ROWS),12800000) --files $(or $(FILES),128) --npz-link

clean:
	rm -rf lake .dagster_home
