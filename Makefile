# egokit developer entry points. `make demo` and `make test` each set everything up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
DEMO_DIR ?= runs/demo
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test demo bench clean

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[test]" $(addprefix -e ,$(PLUGINS))
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/egokit demo $(DEMO_DIR)

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
