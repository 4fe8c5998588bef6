# Two entry points for a fresh machine with Python 3.11:
#   make run    set up .venv, train the default config, then make the figures
#   make test   set up .venv, run the whole test suite
# The venv is rebuilt only when setup.py or constraints.txt change.

PYTHON   ?= python3.11
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
CONFIG   ?= configs/default.json
OUT      ?= result
# Point DATA_DIR at a folder holding the four MNIST IDX files to skip the download.
DATA_DIR ?=
TRAIN_ARGS ?=
PYTEST_ARGS ?=

data_flag := $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

.PHONY: venv run train figures test clean

venv: $(STAMP)

# PIP_CONSTRAINT also reaches the isolated environment in which pip builds
# Chainer's sdist, whose setup.py needs pkg_resources (setuptools < 74).
$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PY) -m pip install --quiet \
	    --disable-pip-version-check "setuptools<74" -e ".[test]"
	touch $@

train: $(STAMP)
	$(PY) scripts/train.py --config $(CONFIG) --out $(OUT) $(data_flag) $(TRAIN_ARGS)

figures: $(STAMP)
	$(PY) scripts/plot_latent.py --model $(OUT)/model.npz --out $(OUT)/figures $(data_flag)

run: train figures

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
