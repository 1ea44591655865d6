# Every target a newcomer can guess. The environment lives in .venv/, pinned by constraints.txt.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo test test-seeds bench dev lint browser java assets npm codegen-ts azurite clean lock

install: $(STAMP) java

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	# uv resolves against constraints.txt: a fresh machine gets exactly what was tested
	$(BIN)/uv pip install --python $(BIN)/python -q -c constraints.txt -e '.[dev]'
	# bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on CI images) every process
	# would otherwise recompile dagster, pandas and pyarrow from source at each start (~2 s)
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib trackplan tracking_plan pipelines models quality_checks schemas >/dev/null || true
	@touch $(STAMP)

demo: install assets
	$(BIN)/trackplan demo

test: install browser assets npm codegen-ts azurite
	$(BIN)/python -m pytest -n 2 -q

# the suite on other seeds: every seeded generator's integer seed + TRACKPLAN_SEED_SHIFT (tests/support/seedshift.py);
# a statement that held only on the seed it was written with fails here (not run by `make test`)
TRACKPLAN_SEED_SHIFT ?= 1000
test-seeds: install browser assets npm codegen-ts azurite
	TRACKPLAN_SEED_SHIFT=$(TRACKPLAN_SEED_SHIFT) PYTHONPATH=tests $(BIN)/python -m pytest -p support.seedshift -n 2 -q

bench: install
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/incremental.py
	# peak memory of the Python marts at ~100k and ~1M events against the per-event frame they used to load
	$(BIN)/python benchmarks/marts_memory.py
	$(BIN)/python benchmarks/quality_bench.py
	$(BIN)/python benchmarks/detector_bench.py
	$(BIN)/python benchmarks/collector_load.py
	# the Spark path (local[2]) beside DuckDB at ~100k and ~1M events: events/s and events per CPU-second of validation,
	# the stitch and the SQL models, the cost per event apart from the fixed cost, bytes shuffled per event (README's sizing)
	$(BIN)/python benchmarks/spark_bench.py
	# coverage, bias, false alarms and power of every estimator over 100 seeds at two sizes (~15 CPU-minutes; --quick: about 1)
	$(BIN)/python benchmarks/calibration.py --jobs 2

# the UI reads the runs `trackplan run` records: DAGSTER_HOME defaults to .dagster beside the warehouse
dev: install
	@test -n "$$TRACKPLAN_HASH_SALT" || echo "TRACKPLAN_HASH_SALT is not set: the ingest asset will refuse to hash PII (export a secret of your own)"
	DAGSTER_HOME=$${DAGSTER_HOME:-$$(dirname "$$(realpath -m $${TRACKPLAN_WAREHOUSE:-warehouse.duckdb})")/.dagster} $(BIN)/dagster dev -w workspace.yaml

SRC := trackplan tracking_plan pipelines schemas quality_checks models tests benchmarks

# ruff, the import contract (tests/test_layers.py: imports flow one way), the sample plan, then the formatter
lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py
	$(BIN)/trackplan lint
	$(BIN)/ruff format --check $(SRC)

# Debian's OpenJDK for the Spark engine and its parity tests (pyspark 4 needs Java 17+): skipped, and listed, where absent
java:
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; } || echo "java not installed: the Spark tests will be skipped (and listed)"

# Debian's chromium for the browser tests (no browser download): skipped, and listed, where absent
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: browser tests will be skipped (and listed)"

# The scripts and styles Great Expectations' Data Docs load from CDNs, from the npm registry at the
# pinned versions (package-lock.json), so the Data Docs open offline; skipped, and said, without npm
DOCS_ASSETS := quality_checks/data_docs_assets
assets: $(DOCS_ASSETS)/node_modules/.package-lock.json

$(DOCS_ASSETS)/node_modules/.package-lock.json: $(DOCS_ASSETS)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq npm >/dev/null; } || true
	@if command -v npm >/dev/null 2>&1; then cd $(DOCS_ASSETS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "npm not installed: Data Docs will load their assets from CDNs (the offline test is skipped, and listed)"; fi

# The real browser tracking libraries (analytics.js, Snowplow) for the browser tests: exact versions
# from tests/browser/package-lock.json (npm registry, no CDN), bundled by the pinned esbuild.
NPM_DIR   := tests/browser
NPM_STAMP := $(NPM_DIR)/dist/.built

npm: $(NPM_STAMP)

$(NPM_STAMP): $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json $(NPM_DIR)/entry.js
	@if command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq npm >/dev/null 2>&1; }; then \
		cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error && npm run -s build && touch dist/.built; \
	else echo "npm not installed: browser tracker tests will be skipped (and listed)"; fi

# The pinned TypeScript toolchain (typescript + the two Segment SDKs, exact versions in
# tests/codegen_ts/package-lock.json) the codegen tests compile the generated code with; `npm ci`
# from the registry, again only when the lock file changes. Without node the tests are skipped, and listed.
CODEGEN_TS := tests/codegen_ts
codegen-ts: $(CODEGEN_TS)/node_modules/.package-lock.json

$(CODEGEN_TS)/node_modules/.package-lock.json: $(CODEGEN_TS)/package.json $(CODEGEN_TS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(CODEGEN_TS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else echo "npm not installed: the TypeScript codegen tests will be skipped (and listed)"; fi

# Microsoft's Azure Storage emulator (Azurite, exact version in tools/azurite/package-lock.json) the az://
# landing tests start on 127.0.0.1 (no telemetry, in memory); `npm ci` from the registry, again only when
# the lock file changes. Without node the az:// tests are skipped, and listed.
AZURITE := tools/azurite
azurite: $(AZURITE)/node_modules/.package-lock.json

$(AZURITE)/node_modules/.package-lock.json: $(AZURITE)/package.json $(AZURITE)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(AZURITE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else echo "npm not installed: the az:// landing tests will be skipped (and listed)"; fi

# Re-pin: resolve the newest versions allowed by pyproject.toml and write constraints.txt
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev -o constraints.txt --python-version 3.11

clean:
	rm -rf $(VENV) .pytest_cache warehouse.duckdb warehouse.duckdb.lock warehouse.duckdb.building landing report.html \
		$(NPM_DIR)/node_modules $(NPM_DIR)/dist $(CODEGEN_TS)/node_modules $(DOCS_ASSETS)/node_modules $(AZURITE)/node_modules .dagster
