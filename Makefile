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

# The CPU demo: synthetic data -> pretraining (recipes/demo.yaml) -> EgoMCQ on held-out videos.
demo: setup
	test -f $(DEMO_DIR)/data/synth.json || $(BIN)/egokit synth $(DEMO_DIR)/data --seed 0
	rm -rf $(DEMO_DIR)/pretrain  # each `make demo` trains from scratch (egokit refuses to mix two runs in one folder)
	$(BIN)/egokit pretrain recipes/demo.yaml data.root=$(DEMO_DIR)/data output_dir=$(DEMO_DIR)/pretrain
	$(BIN)/egokit eval egomcq --ckpt $(DEMO_DIR)/pretrain/model --data $(DEMO_DIR)/data -o $(DEMO_DIR) \
		num_frames=4 chunk_seconds=20

# Every benchmark (`egokit bench --help`); BENCH_ARGS="--quick" for a short run, "--official-repo PATH" to time the
# official code beside egokit (a clone of facebookresearch/EgoVLPv2 outside this repository).
BENCH_ARGS ?=
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[bench]"
	touch $@

bench: setup $(VENV)/.bench-installed
	$(BIN)/egokit bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
