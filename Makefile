# `make run`: install, get the data, train CNN_4 with the study's recipe.  `make test`: install, get the data, check the
# types (mypy), run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/cnn_4.yaml
ARGS ?=

.PHONY: install data run test bench

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

data: install
	bash scripts/get-data.sh $(BIN)/fmnist

run: data
	$(BIN)/fmnist run $(SPEC) $(ARGS)

test: data
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -n auto $(ARGS)
