# The two commands of the README. Everything they need is installed by these rules.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DASHBOARD := flowbus/dashboard
VENDOR := $(DASHBOARD)/static/vendor
ASSETS := $(VENDOR)/.installed
NPM := .flowbus/npm
MODULES := $(NPM)/node_modules

.PHONY: dev test lint kafka clean browser assets

# Run flowbus for real on this machine: local broker, embedded PostgreSQL, example workflows,
# a worker, and the API with the dashboard on http://127.0.0.1:8080/.
dev: $(STAMP) $(ASSETS)
	$(BIN)/flowbus dev

# Lint, type-check and run the whole test suite (starts and stops its own broker and database;
# the browser tests drive Debian's Chromium).
test: $(STAMP) $(ASSETS) browser
	$(BIN)/ruff check flowbus tests migrations
	$(BIN)/ruff format --check flowbus tests migrations
	$(BIN)/mypy
	$(BIN)/python -m flowbus.devstack.kafka fetch
	$(BIN)/pytest -p no:cacheprovider

# setuptools warns on every editable install that the checkout shadows the package: that
# is the point of an editable install, so that warning is silenced for this command alone.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

assets: $(ASSETS)

# The dashboard's front-end packages, pinned in its package-lock.json, from the npm registry;
# their browser builds are copied to static/vendor/, where the API serves them (never a CDN).
# They are installed outside the Python package, which must hold only the project's code.
$(ASSETS): $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	command -v npm >/dev/null || (apt-get update && apt-get install -y npm)
	mkdir -p $(NPM)
	cp $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json $(NPM)/
	cd $(NPM) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp $(MODULES)/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp $(MODULES)/htmx-ext-sse/dist/sse.min.js $(VENDOR)/htmx-ext-sse.min.js
	cp $(MODULES)/mermaid/dist/mermaid.min.js $(VENDOR)/mermaid.min.js
	cp $(MODULES)/uplot/dist/uPlot.iife.min.js $(MODULES)/uplot/dist/uPlot.min.css $(VENDOR)/
	for p in htmx.org htmx-ext-sse mermaid uplot; do cp $(MODULES)/$$p/LICENSE $(VENDOR)/$$p.LICENSE; done
	touch $(ASSETS)

# The browser tests drive Debian's Chromium through its ChromeDriver (the test machine is a
# Debian one, as root); nothing downloads a browser build of its own.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)

clean:
	rm -rf $(VENV) .flowbus .mypy_cache .ruff_cache .pytest_cache $(VENDOR)
