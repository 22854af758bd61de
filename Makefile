# NexusTrade: one vocabulary for every task. `make run` and `make test` set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench day build deploy clean install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## run: start the whole platform locally with demo data (API on http://127.0.0.1:8000)
run: $(STAMP)
	$(BIN)/nexus up --demo

## test: cfn-lint on every template, then the whole test suite
test: $(STAMP)
	$(BIN)/cfn-lint template.yaml stacks/*.yaml
	$(BIN)/pytest -q

## lint: ruff everywhere, mypy --strict on the shared kernel, the engine and the local runtime
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/common/nexus_common containers/matching/nexus_matching nexus

## bench: the benchmarks the issues ask for (figures printed, nothing asserted)
bench: $(STAMP)
	$(BIN)/nexus bench matching
	$(BIN)/nexus bench local
	$(BIN)/nexus bench cache

## day: the 10,000-pair simulated trading day on a platform of its own, then reconciliation
##      (about 45 minutes on a 2-core machine; exit 1 on a break)
day: $(STAMP)
	$(BIN)/nexus bench day --accounts 50 --trades 10000

## build / deploy: SAM, on a machine with the SAM CLI, Docker and AWS credentials
build:
	sam build --template template.yaml
deploy:
	sam deploy

clean:
	rm -rf $(VENV) .nexus .pytest_cache .mypy_cache .ruff_cache
