# Every target creates the environment (.venv) on first use: see scripts/setup_env.sh.
VENV ?= .venv
JOBS ?= 2
ENV_STAMP := $(VENV)/.hasp-env

.PHONY: env demo test test-long bench clean

env: $(ENV_STAMP)

$(ENV_STAMP): pyproject.toml scripts/setup_env.sh
	VENV=$(VENV) scripts/setup_env.sh

## The main job: generate the default preset and run it end to end in Verilator.
demo: env
	$(VENV)/bin/hasp demo

## The default test run (about 10 minutes on 2 cores).
test: env
	$(VENV)/bin/pytest -n $(JOBS)

## Long regressions too.
test-long: env
	$(VENV)/bin/pytest -n $(JOBS) --long

bench: env
	$(VENV)/bin/hasp bench pe-array --preset tiny
	$(VENV)/bin/hasp bench chip --preset tiny

clean:
	rm -rf build out
