# Two commands on a fresh machine: `make run` starts the bot, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench mutate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smsbot run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

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
