# crossrt: `make` lists the targets. Variables left empty use crossrt's own defaults.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CROSSRT := $(PY) -m crossrt
# GPU=1 where `nvidia-smi -L` lists a GPU (override with GPU=0 or GPU=1). The GPU set is a CUDA 13
# build of torch with onnxruntime-gpu and its [cuda,cudnn] extras: one set of CUDA 13 and cuDNN 9
# libraries that both load (docs/commands.md, "The GPU set"). Without a GPU, `torch==2.13.0`
# resolves to a local CPU build here; a bare `torch` would pull a multi-GB CUDA build.
ifeq ($(origin GPU),undefined)
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
endif
ifeq ($(GPU),1)
TORCH ?= torch==2.14.1
EXTRAS := test,plots,openvino,loadgen,gpu
else
TORCH ?= torch==2.13.0
EXTRAS := test,plots,openvino,loadgen
endif
WHY_GPU := $(if $(filter file,$(origin GPU)),$(if $(filter 1,$(GPU)),nvidia-smi lists a GPU,nvidia-smi lists none),set by hand)
STAMP := $(VENV)/.installed-$(if $(filter 1,$(GPU)),gpu,cpu)
DATASET_STAMP := $(VENV)/.dataset-tried
FASHION_DIR := /usr/share/datasets/fashion-mnist

# Each variable left unset passes no flag, so crossrt's own defaults apply (`crossrt <command> --help`).
DEVICE ?=
NPROC ?=
THREADS ?=
EPOCHS ?=
BATCH ?=
DATASET ?=
DATA ?=
PROVIDER ?=
MODEL ?=
RUNTIMES ?=
ARGS ?=

opt = $(if $(2),$(1) $(2))
DATA_FLAGS = $(call opt,--dataset,$(DATASET)) $(call opt,--data-dir,$(DATA))

.DEFAULT_GOAL := help
.PHONY: help setup setup-plan dataset train export quantize bench-infer loadgen bench suite test test-all lint clean

help: ## list the targets and their variables
	@echo "crossrt: LeNet5 trained in PyTorch, timed under ONNX Runtime, PyTorch and more runtimes"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "variables: DEVICE=cpu|cuda NPROC=P THREADS=N[,N] EPOCHS=N BATCH=N[,N] DATASET=auto|mnist|fashion-mnist"
	@echo "           DATA=DIR PROVIDER=cpu[,cuda] MODEL=FILE RUNTIMES=R[,R]|all ARGS='...'; unset = defaults"
	@echo "then: $(CROSSRT) doctor, $(CROSSRT) --help, $(CROSSRT) train --help, ..."

setup: $(STAMP) $(DATASET_STAMP) ## .venv with crossrt and its dependencies (the GPU set where nvidia-smi lists a GPU), the dataset [GPU=0|1]

setup-plan: ## say what `make setup` would install on this machine, and why
	@echo "GPU=$(GPU) ($(WHY_GPU)): $(TORCH) and crossrt[$(EXTRAS)] into $(VENV)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed*
	touch $@

# Debian's dataset-fashion-mnist makes `make train` work offline; MNIST is fetched when reachable.
# Tried once per .venv (the stamp), so that every later target does not say it again.
dataset: $(DATASET_STAMP)

$(DATASET_STAMP): $(STAMP)
	@if [ -d $(FASHION_DIR) ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	  || echo "note: could not install dataset-fashion-mnist with apt-get"; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "note: no apt-get as root here; crossrt will download its datasets instead"; fi
	@$(CROSSRT) fetch mnist >/dev/null 2>&1 || echo "note: MNIST is not reachable (offline?); make train will use Fashion-MNIST"
	@touch $@

# Tells crossrt how it was started, so that a stopped run says how to resume it in the same words.
VIA_MAKE = CROSSRT_VIA_MAKE='$@ $(MAKEOVERRIDES)'

train: setup ## train LeNet5 and export exports/lenet5.onnx [DEVICE NPROC THREADS EPOCHS BATCH DATASET DATA]
	$(VIA_MAKE) $(CROSSRT) train $(call opt,--device,$(DEVICE)) $(call opt,--nproc,$(NPROC)) $(call opt,--threads,$(THREADS)) \
	  $(call opt,--epochs,$(EPOCHS)) $(call opt,--batch-size,$(BATCH)) $(DATA_FLAGS) $(ARGS)

export: setup ## re-export exports/lenet5.pt to ONNX and check parity [DATASET DATA]
	$(CROSSRT) export $(DATA_FLAGS) $(ARGS)

quantize: setup ## an int8 copy of exports/lenet5.onnx, for bench-infer's onnxruntime-int8 rows [MODEL]
	$(CROSSRT) quantize $(call opt,--model,$(MODEL)) $(DATA_FLAGS) $(ARGS)

bench-infer: setup ## time validation under ONNX Runtime, PyTorch, ... [PROVIDER THREADS BATCH MODEL RUNTIMES]
	$(CROSSRT) bench-infer $(call opt,--model,$(MODEL)) $(call opt,--provider,$(PROVIDER)) \
	  $(call opt,--threads,$(THREADS)) $(call opt,--batch-size,$(BATCH)) $(call opt,--runtimes,$(RUNTIMES)) \
	  $(DATA_FLAGS) $(ARGS)

loadgen: setup ## MLPerf LoadGen's scenarios: p90 latency, offline samples/s, the QPS a latency bound allows [PROVIDER THREADS RUNTIMES]
	$(CROSSRT) loadgen $(call opt,--model,$(MODEL)) $(call opt,--provider,$(PROVIDER)) $(call opt,--threads,$(THREADS)) \
	  $(call opt,--runtimes,$(RUNTIMES)) $(DATA_FLAGS) $(ARGS)

suite: setup ## the reference's table for this machine, every mode, beside the article's figures [EPOCHS DEVICE]
	$(CROSSRT) suite $(call opt,--epochs,$(EPOCHS)) $(call opt,--device,$(DEVICE)) $(DATA_FLAGS) $(ARGS)

bench: setup ## crossrt vs the reference's PyTorch recipe, same run; updates BENCHMARKS.md (minutes; not in CI)
	$(PY) benchmarks/vs_reference.py $(call opt,--dataset,$(DATASET)) $(ARGS)

test: setup ## the quick test suite, a few minutes (CPU; CUDA tests skip without a GPU) [ARGS]
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-all: setup ## every test, the slow end-to-end ones too (what CI runs; about 15 minutes) [ARGS]
	CROSSRT_TEST_ALL=1 $(PY) -m pytest -q $(ARGS)

lint: setup ## ruff's lint and format checks, as CI runs them
	$(VENV)/bin/ruff check crossrt tests benchmarks
	$(VENV)/bin/ruff format --check crossrt tests benchmarks

clean: ## remove everything in exports/ and results/ (keeps .venv and the dataset cache)
	rm -rf results
	find exports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
