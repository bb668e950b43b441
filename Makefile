# table-sync developer commands. Needs only python3 and make: everything else is installed
# under .tools/ (uv, and aws-sam-cli in its own tool environment) and .venv/ (from uv.lock).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
AWSCLI_VERSION := 1.46.3
DYNAMODUMP_VERSION := 1.11.1
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bootstrap/bin/uv
SAM := $(TOOLS)/bin/sam
CHECKOV := $(TOOLS)/bin/checkov
AWS_CLI := $(TOOLS)/bin/aws
DYNAMODUMP := $(TOOLS)/bin/dynamodump
VENV := $(CURDIR)/.venv
RUN := $(VENV)/bin

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_TOOL_DIR := $(TOOLS)/uv-tools
export UV_TOOL_BIN_DIR := $(TOOLS)/bin
export SAM_CLI_TELEMETRY := 0
# sam validate needs a region; nothing here ever reaches AWS.
export AWS_DEFAULT_REGION ?= eu-west-1
# sam build for the python3.13 runtime needs a python3.13 on PATH (pyenv provides it here).
SAM_PYENV := 3.11.7:3.12.1:3.13.0

.PHONY: help install demo bench test lint typecheck unit integration templates build requirements clean \
	lambda-image sam-local python313 docs

help:
	@echo "make demo   - run the real sync on the embedded two-account AWS (moto) and check it"
	@echo "make install - .venv/bin/table-sync, and sam and aws in .tools/bin/ (for deploying)"
	@echo "make test   - lint, type-check, all tests, template validation and sam build"
	@echo "make build  - sam build (python3.13, arm64)"
	@echo "make docs   - the documentation site, from docs/, into site/ (mkdocs build --strict)"
	@echo "make bench  - benchmark table-sync (20-35 minutes): embedded AWS, then a latency model"
	@echo "make sam-local - sam build, then sam local invoke in a Lambda container against local-aws (needs Docker)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)/bootstrap
	$(TOOLS)/bootstrap/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml dev/pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

$(SAM): $(UV)
	$(UV) tool install --quiet --python $(PYTHON) aws-sam-cli==$(SAM_VERSION)

# The AWS CLI, for the tests that eval `table-sync credentials` and call `aws sts` with it.
$(AWS_CLI): $(UV)
	$(UV) tool install --quiet --python $(PYTHON) awscli==$(AWSCLI_VERSION)

# dynamodump, for `make bench` only: it pins an older boto3, so it gets its own environment.
$(DYNAMODUMP): $(UV)
	$(UV) tool install --quiet --python $(PYTHON) dynamodump==$(DYNAMODUMP_VERSION)

$(CHECKOV): $(UV)
	$(UV) tool install --quiet --python $(PYTHON) checkov==$(CHECKOV_VERSION)

install: $(VENV)/.synced $(SAM) $(AWS_CLI)

# The demo deploys template.yaml into the embedded AWS: SAM CLI's own translator transforms it.
demo: $(VENV)/.synced $(SAM)
	$(RUN)/table-sync demo

bench: $(VENV)/.synced $(SAM) $(DYNAMODUMP)
	DYNAMODUMP=$(DYNAMODUMP) $(RUN)/python -m bench.run

lint: $(VENV)/.synced
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .

typecheck: $(VENV)/.synced
	$(RUN)/mypy

requirements: $(UV)
	$(UV) export --frozen --package table-sync --no-dev --no-hashes --no-emit-workspace \
		--no-annotate --format requirements-txt -o src/requirements.txt --quiet

unit: $(VENV)/.synced
	$(RUN)/pytest tests/unit

integration: $(VENV)/.synced
	$(RUN)/pytest tests/integration

templates: $(VENV)/.synced $(SAM) $(CHECKOV)
	$(RUN)/cfn-lint template.yaml source-account/template.yaml
	$(SAM) validate --lint --template template.yaml
	$(SAM) validate --lint --template source-account/template.yaml
	$(CHECKOV) --quiet --compact --framework cloudformation --skip-download \
		-f template.yaml -f source-account/template.yaml

# sam build for the python3.13 runtime needs a python3.13 on PATH (sam checks the interpreter).
python313:
	@PYENV_VERSION=$(SAM_PYENV) python3.13 -c "import sys; assert sys.version_info[:2] == (3, 13)" \
		2>/dev/null || { echo "sam build needs a python3.13 on PATH (the Lambda runtime's): install \
	one (pyenv install 3.13, uv python install 3.13, or your system's python3.13 package) and run \
	make again"; exit 1; }

build: $(SAM) requirements python313
	@git diff --quiet -- src/requirements.txt 2>/dev/null || \
		{ echo "src/requirements.txt is out of date with uv.lock: commit the regenerated file"; exit 1; }
	PYENV_VERSION=$(SAM_PYENV) $(SAM) build --template template.yaml

# The suite runs on every core (JOBS=1 for one process): each pytest-xdist worker starts its
# own embedded AWS; the sam-build group (the x86_64 build and the containers) stays on one.
# Its slowest tests and its time by kind are printed at its end: on record for the next change.
JOBS ?= auto
test: lint typecheck templates docs build $(AWS_CLI)
	$(RUN)/pytest -n $(JOBS) --dist loadgroup --durations=25

# The documentation site: --strict, so a broken link or anchor fails the build (and make test).
docs: $(VENV)/.synced
	NO_MKDOCS_2_WARNING=1 $(RUN)/mkdocs build --strict --quiet

# The Lambda base image sam local invoke runs on, built locally (no registry is reachable here);
# rebuilt only when its inputs change.
lambda-image: $(VENV)/.synced
	$(RUN)/python -m table_sync_dev.local.lambda_image $(ARCH)

# The whole sam local path: base image, sam build, local-aws, invoke each EVENTS, verify.
# ARCH=arm64 (the template's default) runs under qemu on an x86_64 machine: see README.
EVENTS ?= events/scheduled-event.json events/backfill-s3.json
sam-local: $(VENV)/.synced $(SAM) python313
	ARCH=$(ARCH) $(RUN)/python -m table_sync_dev.local.container $(EVENTS)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache site
