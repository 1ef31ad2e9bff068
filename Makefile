# `make demo` and `make test` work on a fresh Debian machine with Python 3.11: they build .venv from
# this repository's own files first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := tf,onnx,openvino,s3,operator,dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install system-deps schema-packages demo test lint types contracts pytest pytest-fast crd bench bench-models bench-operator bench-pipeline bench-reliability clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-* && touch $@

# Debian packages, installed when we are root: Prometheus for the dashboard and metrics tests; bubblewrap,
# which confines the stages that run the model (docs/isolation.md; without it they fall back to unshare).
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus bubblewrap >/dev/null; \
	  else echo "missing: sudo apt-get install -y prometheus bubblewrap"; fi; \
	fi

# The servers' published schemas the promotion and example tests check against (tests/fixtures/schema_packages.py):
# KServe's generated OpenAPI models and Triton's model_config.proto, from their PyPI packages, without their
# dependencies (kserve pins protobuf<7, TensorFlow needs 7) and outside the venv's site-packages.
SCHEMA_PACKAGES := kserve==0.21.0 tritonclient==2.73.0
schema-packages: $(VENV)/schema-packages/.installed
$(VENV)/schema-packages/.installed: | install
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/schema-packages $(SCHEMA_PACKAGES)
	touch $@

examples/digits/model/saved_model.pb: examples/digits/train.py | install
	$(BIN)/python examples/digits/train.py

demo: install examples/digits/model/saved_model.pb
	$(BIN)/optismith run -f examples/digits/optimization.yaml

test: install system-deps schema-packages lint types contracts pytest

lint:
	$(BIN)/ruff check operator tests bench examples

types:
	$(BIN)/mypy

contracts:
	$(BIN)/lint-imports

# Helm's Go SDK runs in-process and crashes (SIGSEGV) when TensorFlow or ONNX Runtime were loaded into the
# process first, so the chart, image and GitOps tests run in their own pytest process, before the rest.
TOOLING_TESTS := tests/charts tests/gitops tests/images

pytest:
	$(BIN)/python -m pytest $(TOOLING_TESTS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(foreach t,$(TOOLING_TESTS),--ignore=$(t)) $(PYTEST_ARGS)

pytest-fast:
	$(BIN)/python -m pytest $(TOOLING_TESTS) -m "not slow" $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(foreach t,$(TOOLING_TESTS),--ignore=$(t)) -m "not slow" $(PYTEST_ARGS)

crd: install
	$(BIN)/optismith crd > crds/modeloptimizations.optismith.io.yaml
	$(BIN)/python -c "from optismith.controller.crd import render_reference_markdown as r; print(r(), end='')" > docs/reference.md
	cp crds/modeloptimizations.optismith.io.yaml charts/optismith/crds/

# Benchmarks (docs/benchmarks.md, docs/reliability.md): each prints its table and writes bench/results/*.json.
bench: bench-models bench-operator bench-pipeline

bench-models: install
	$(BIN)/python -m bench.model_speed

bench-operator: install
	$(BIN)/python -m bench.operator_scale

bench-pipeline: install
	$(BIN)/python -m bench.pipeline_cost

bench-reliability: install system-deps
	$(BIN)/python -m bench.reliability_figures --write

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache
