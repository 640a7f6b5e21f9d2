# Two commands on a fresh machine: `make run` starts the bot, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-pg lint bench mutate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smsbot run

# The whole suite on SQLite (the store contract tests on both backends), then, when PostgreSQL
# is reachable or required (SMSBOT_REQUIRE_POSTGRES=1, as .ci/run sets under CI), `test-pg`.
# Without it the first pass prints the one line saying the PostgreSQL suite was not run.
# The first pass runs on 2 pytest-xdist processes, a whole file to each (module-scoped fakes stay shared).
XDIST := -n 2 --dist loadfile
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(XDIST)
	@if [ "$${SMSBOT_REQUIRE_POSTGRES:-}" = 1 ] || $(BIN)/python -c "import sys; \
		from tests.storage.conftest import pg_unreachable; sys.exit(pg_unreachable() is not None)"; \
	then $(MAKE) --no-print-directory test-pg; fi

# The end-to-end send/schedule/bulk, conversations and consent suites again with the app on
# PostgreSQL (a fresh schema per test at SMSBOT_TEST_DATABASE_URL), and the multi-process fleet
# test (tests/e2e/test_fleet.py).
# On one process: the fleet's five processes (a pool of up to 10 connections each) next to
# another e2e test's worker processes left too little of its 100 connections (it ran out here, on a
# server other runs were also using).
test-pg: $(STAMP)
	SMSBOT_E2E_BACKEND=postgres SMSBOT_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -m "" \
		tests/e2e/test_e2e_send.py tests/e2e/test_e2e_schedules.py tests/e2e/test_e2e_bulk.py \
		tests/e2e/test_e2e_conversations.py tests/e2e/test_e2e_conversations_replies.py \
		tests/e2e/test_e2e_consent.py tests/e2e/test_e2e_consent_inbound.py tests/e2e/test_fleet.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/ack.py
	$(BIN)/python bench/schedule.py
	$(BIN)/python bench/bulk.py
	$(BIN)/python bench/webhooks.py

# Slow (minutes), so not part of `make test`: mutation testing of the rule functions
# (bench/mutation_report.py RULES), then a score per module and the surviving mutants.
mutate: $(STAMP)
	$(BIN)/python bench/mutation_report.py --patterns | xargs -d '\n' $(BIN)/mutmut run --max-children 2
	$(BIN)/python bench/mutation_report.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache mutants
