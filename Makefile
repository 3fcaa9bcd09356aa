# Thin wrappers. `make repro` and `make test` each set up .venv first when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
PORT ?= 5000

.PHONY: setup repro cats-vs-dogs test test-fast ui exps bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

repro: setup
	$(BIN)/dvc repro $(ARGS)
	$(BIN)/dvc metrics show summary timings/summary

# The photo pipeline, pipelines/cats-vs-dogs (profiles/cats-vs-dogs.yaml written into its own
# params.yaml; results committed): `make cats-vs-dogs` reproduces it on the 10,000 shared
# photos it names; `make cats-vs-dogs DATA=path/to/PetImages` runs it as a DVC experiment of
# that folder on another folder or zip of class folders, `make cats-vs-dogs DATA=kaggle` on the
# Kaggle archive (needs credentials). ARGS go to `dvc repro` / `dvc exp run`.
DATA ?=
PHOTO_PIPELINE := pipelines/cats-vs-dogs
CATS_VS_DOGS_SOURCE := $(if $(filter kaggle,$(DATA)),-S data.source=kaggle -S data.path=null,-S data.source=folder -S data.path=$(abspath $(DATA)))

cats-vs-dogs: setup
	cd $(PHOTO_PIPELINE) && $(if $(DATA),$(BIN)/dvc exp run $(CATS_VS_DOGS_SOURCE),$(BIN)/dvc repro) $(ARGS)
	cd $(PHOTO_PIPELINE) && $(BIN)/dvc metrics show summary timings/summary

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# Experiments side by side in 120 columns (`dvc exp show` options pass through ARGS).
exps: setup
	$(BIN)/python -m pixelflip.reports.experiments $(ARGS)

ui: setup
	$(BIN)/python -m pixelflip.tracking.ui --port $(PORT)

bench: setup
	$(BIN)/python benchmarks/counterfactuals.py
	$(BIN)/python benchmarks/alibi_comparison.py --num-images 10
	$(BIN)/python benchmarks/validation.py --images 4000 --workers 2
	$(BIN)/python benchmarks/params_check.py --repeats 5
	$(BIN)/python benchmarks/input_pipeline.py --which digits
	$(BIN)/python benchmarks/input_pipeline.py --which photos
	$(BIN)/python benchmarks/counterfactual_scaling.py
	$(BIN)/python benchmarks/photo_training.py --part speed
	$(BIN)/python benchmarks/photo_training.py --part memory
	$(BIN)/python benchmarks/full_archive.py --images 25000 --small 5000 --workers 2
	$(BIN)/python benchmarks/region_counterfactuals.py --pipeline pipelines/cats-vs-dogs --images 64

clean:
	rm -rf $(VENV)
