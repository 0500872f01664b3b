# make demo  — install, then run the demo registry (SQLite) and its server
# make test  — install with the test extras, then lint and the whole suite
# make lint  — ruff and mypy only
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint pytest postgres system-deps bench clean

# Reinstall only when the dependency list or the compiled code changes; gcc builds the
# latter (src/credo/lists/_probe.c, src/credo/_ric.c).
$(BIN)/.base: pyproject.toml src/credo/lists/_probe.c src/credo/_ric.c
	@bash scripts/system-deps.sh gcc
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.dev: pyproject.toml src/credo/lists/_probe.c src/credo/_ric.c
	@bash scripts/system-deps.sh gcc
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(BIN)/.base

demo: $(BIN)/.base
	$(BIN)/credo demo

system-deps:
	@bash scripts/system-deps.sh chromium fonts-wqy-microhei

postgres:
	@bash scripts/ensure-postgres.sh

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite runs on every CPU (pytest-xdist, TEST_JOBS); the tests that stop and start
# PostgreSQL run after it, alone, when nothing else uses the cluster. Exit status 5 is
# "no test selected" (PYTEST_ARGS naming tests of one kind only).
TEST_JOBS ?= auto
pytest: $(BIN)/.dev system-deps postgres
	$(BIN)/pytest -n $(TEST_JOBS) -m "not restarts_postgres" $(PYTEST_ARGS) || test $$? -eq 5
	$(BIN)/pytest -m restarts_postgres $(PYTEST_ARGS) || test $$? -eq 5

test: lint pytest

bench: $(BIN)/.dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output

# make fuzz  — nightly: schemathesis and hypothesis with 1,000 examples per operation/property
# make soak  — soak-crash, then bench/load.py: 10 min at 70 % of capacity, 2 min at 3x, recovery;
#              writes bench/RESULTS.md
# make soak-crash — tests/ledger/test_crash.py with 200 SIGKILLs of the server and 100 of the CLI
#              ingest per database, and 10 PostgreSQL restarts (CREDO_CRASH_KILLS,
#              CREDO_CRASH_INGEST_KILLS, CREDO_CRASH_PG_RESTARTS; CREDO_PG_RESTART=0 leaves the
#              local PostgreSQL alone, which other users of it will want)
.PHONY: fuzz soak soak-crash
fuzz: $(BIN)/.dev postgres
	CREDO_FUZZ_EXAMPLES=$${CREDO_FUZZ_EXAMPLES:-1000} $(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

soak-crash: $(BIN)/.dev postgres
	CREDO_CRASH_KILLS=$${CREDO_CRASH_KILLS:-200} CREDO_CRASH_PG_RESTARTS=$${CREDO_CRASH_PG_RESTARTS:-10} \
	CREDO_PG_RESTART=$${CREDO_PG_RESTART:-1} $(BIN)/pytest tests/ledger/test_crash.py -s $(PYTEST_ARGS)

soak: soak-crash
	$(BIN)/python bench/load.py --write-results $(SOAK_ARGS)
