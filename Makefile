# The two commands of the README. Everything they need is installed by these rules.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint kafka clean

# Run flowbus for real on this machine: local broker, embedded PostgreSQL, example workflows.
dev: $(STAMP)
	$(BIN)/flowbus dev

# Lint, type-check and run the whole test suite (starts and stops its own broker and database).
test: $(STAMP)
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

clean:
	rm -rf $(VENV) .flowbus .mypy_cache .ruff_cache .pytest_cache
