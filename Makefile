# NexusTrade: one vocabulary for every task. `make run` and `make test` set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The SAM CLI lives in a venv of its own: its pinned dependencies would fight the dev venv's
# boto3/moto. `sam build` (no container) builds the python3.11 layer and functions with the
# python3.11 on PATH and its pip, fetching arm64 wheels; no Docker needed.
SAM_CLI_VERSION := 1.170.0
SAM_VENV  := .venv-sam
SAM       := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)

.PHONY: run test lint bench day build build-check sam deploy clean install

# Prebuilt wheels beside the checkout (quickfix's C++ build takes about 20 minutes on 2 cores):
# pip takes them from there when they are present, and builds from PyPI otherwise.
WHEELS := $(wildcard ../shared/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(FIND_LINKS) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## run: start the whole platform locally with demo data (API on http://127.0.0.1:8000)
run: $(STAMP)
	$(BIN)/nexus up --demo

# cfn-lint's Lambda runtime rules (W2531, E2531, E2533) set the runtime's end-of-support dates
# against today's: python3.11's deprecation (2027-06-30) would fail `make test` and CI on every
# clone from that day on. The tests pass on any date, so they leave those three out; `make deploy`
# runs them, on the day they matter (tests/unit/sambuild/test_lint_any_date.py).
CFN_LINT_ANY_DATE := --ignore-checks W2531 E2531 E2533

## test: cfn-lint on every template, then the whole test suite: the unit and integration tests
##       on every core (pytest-xdist, a test file per worker), then the system tests one at a
##       time (each starts the whole platform, which wants the machine to itself)
test: $(STAMP)
	$(BIN)/cfn-lint template.yaml stacks/*.yaml $(CFN_LINT_ANY_DATE)
	$(BIN)/pytest -q -m "not system" --numprocesses auto --maxprocesses 4 --dist loadfile
	$(BIN)/pytest -q -m system

## lint: ruff everywhere, mypy --strict on the shared kernel, the engine and the local runtime
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/common/nexus_common containers/matching/nexus_matching nexus

## bench: the benchmarks the issues ask for (figures printed, nothing asserted), make day's last
DAY := $(BIN)/nexus bench day --accounts 50 --trades 10000
bench: $(STAMP)
	$(BIN)/nexus bench matching
	$(BIN)/nexus bench local
	$(BIN)/nexus bench cache
	$(BIN)/nexus bench fix
	$(BIN)/nexus bench routing
	$(BIN)/nexus bench analytics
	$(BIN)/nexus bench analytics-route
	$(BIN)/nexus bench surveillance
	$(DAY)

## day: the 10,000-pair simulated trading day on a platform of its own, then reconciliation
##      (9 to 14 minutes on a 2-core machine; its time against the target; exit 1 on a break)
day: $(STAMP)
	$(DAY)

$(SAM_STAMP):
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $(SAM_STAMP)

## sam: install the pinned SAM CLI into .venv-sam (run it as .venv-sam/bin/sam)
sam: $(SAM_STAMP)

## build: sam build of the layer and every function into .aws-sam/build (needs python3.11 on PATH,
##        the package index, no Docker, no AWS credentials)
build: $(SAM_STAMP)
	$(SAM) build --template template.yaml

## build-check: what CI runs before `make test` (about 5 minutes): the SAM CLI's own cfn-lint on
##              every template, a clean sam build, then every built artifact fits the architectures
##              the template declares (.ci/check_build.py)
# `sam validate --lint` is this cfn-lint, one template and one 30 s start-up at a time, and blind
# to nested stack parameters; one run over all the templates checks more in a tenth of the time.
build-check: $(SAM_STAMP) $(STAMP)
	$(SAM_VENV)/bin/cfn-lint template.yaml stacks/*.yaml $(CFN_LINT_ANY_DATE)
	rm -rf .aws-sam
	$(SAM) build --template template.yaml
	$(BIN)/python .ci/check_build.py .aws-sam/build

## deploy: on a machine with Docker (the engine image) and AWS credentials; cfn-lint first, with
##         the Lambda runtime's end-of-support dates against today's
deploy: $(SAM_STAMP)
	$(SAM_VENV)/bin/cfn-lint template.yaml stacks/*.yaml
	$(SAM) deploy

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .nexus .pytest_cache .mypy_cache .ruff_cache
