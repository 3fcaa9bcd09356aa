# Thin wrappers. `make repro` and `make test` each set up .venv first when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
PORT ?= 5000

.PHONY: setup repro cats-vs-dogs test test-fast ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

repro: setup
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show metrics/comparison.json

# Kaggle cats vs dogs (needs Kaggle credentials) with the photo settings of
# profiles/cats-vs-dogs.yaml: 128x128 RGB, flips, a deeper CNN. `make cats-vs-dogs DATA=path/to/PetImages`
# runs the same on a local folder or zip of class folders instead, offline. Runs as a DVC
# experiment in the workspace (`dvc exp show`); ARGS go to `dvc exp run`.
DATA ?=
CATS_VS_DOGS_SOURCE := $(if $(DATA),-S data.source=folder -S data.path=$(abspath $(DATA)),)

cats-vs-dogs: setup
	$(BIN)/python -m pixelflip.config.profiles cats-vs-dogs $(CATS_VS_DOGS_SOURCE) --run $(ARGS)
	$(BIN)/dvc metrics show metrics/comparison.json

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(PORT)

bench: setup
	$(BIN)/python benchmarks/counterfactuals.py
	$(BIN)/python benchmarks/validation.py --images 4000 --workers 2
	$(BIN)/python benchmarks/params_check.py --repeats 5
	$(BIN)/python benchmarks/input_pipeline.py --which digits
	$(BIN)/python benchmarks/input_pipeline.py --which photos
	$(BIN)/python benchmarks/counterfactual_scaling.py

clean:
	rm -rf $(VENV)
