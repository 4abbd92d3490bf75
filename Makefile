# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test test-heavy test-all demo lint clean

venv: $(STAMP)

# torch/torchvision first, pinned: pip takes these exact builds from the local wheel store. Then the package
# with every extra, each dependency at the exact tested version of constraints.txt (pyproject.toml only
# states compatible ranges, as a library must).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

# the tests marked slow / export (heavy variants, every family's ONNX export, DDP, the wheel installed outside the
# repository): CI runs them after `make test`
test-heavy: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "slow or export" $(PYTEST_ARGS)

test-all: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "" $(PYTEST_ARGS)

demo: venv
	$(BIN)/litevision demo

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
