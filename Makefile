# Two entry points for a fresh machine with Python 3.11:
#   make run    set up .venv, train the default config, then make the figures
#   make test   set up both tested stacks and run the whole suite in each:
#               .venv (NumPy 1.26, pinned) and .venv-numpy2 (newest NumPy 2)
# A venv is rebuilt only when setup.py or its constraints file changes.

PYTHON   ?= $(shell command -v python3.11 || command -v python3)
CONFIG   ?= configs/default.json
OUT      ?= result
# Point DATA_DIR at a folder holding the four MNIST IDX files to skip the download.
DATA_DIR ?=
TRAIN_ARGS ?=
PYTEST_ARGS ?=

data_flag := $(if $(DATA_DIR),--data-dir $(DATA_DIR),)
PY := .venv/bin/python

.PHONY: venv run train figures explorer article article-eval benchmark \
        readme-figures readme-numbers test test-numpy1 test-numpy2 gpu-check \
        clean

# $(1): venv folder, $(2): constraints file, $(3): extra requirements.
# PIP_CONSTRAINT also reaches the isolated environment in which pip builds
# Chainer's sdist, whose setup.py needs pkg_resources (setuptools < 74).
define venv_rule
$(1)/.installed: setup.py constraints/$(2).txt
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	PIP_CONSTRAINT=$(CURDIR)/constraints/$(2).txt $(1)/bin/python -m pip \
	    install --quiet --disable-pip-version-check "setuptools<74" $(3) -e ".[test,mpi]"
	touch $$@
endef
$(eval $(call venv_rule,.venv,numpy1,))
$(eval $(call venv_rule,.venv-numpy2,numpy2,"numpy>=2"))

venv: .venv/.installed

train: .venv/.installed
	$(PY) scripts/train.py --config $(CONFIG) --out $(OUT) $(data_flag) $(TRAIN_ARGS)

figures: .venv/.installed
	$(PY) scripts/plot_latent.py --model $(OUT)/model.npz $(data_flag)

run: train figures

# The latent space explorer of $(OUT)/model.npz: open $(OUT)/explorer/index.html.
explorer: .venv/.installed
	$(PY) scripts/export_web.py --model $(OUT)/model.npz --out $(OUT)/explorer $(data_flag)

# The article's two published runs, then the figures shown in the README.
article: .venv/.installed
	$(PY) scripts/train.py --config configs/article_z20.json --out result/article_z20 $(data_flag) $(TRAIN_ARGS)
	$(PY) scripts/train.py --config configs/article_z2.json --out result/article_z2 $(data_flag) $(TRAIN_ARGS)

# Their evaluation on the whole test set (K = 5000: about 20 minutes each on
# 2 cores), and the speed table; readme-numbers prints the README's tables.
article-eval: .venv/.installed
	$(PY) scripts/evaluate.py --model result/article_z20/model.npz $(data_flag)
	$(PY) scripts/evaluate.py --model result/article_z2/model.npz $(data_flag)

benchmark: .venv/.installed
	$(PY) scripts/benchmark.py --json result/benchmark.json

readme-numbers: .venv/.installed
	$(PY) scripts/readme_numbers.py result

readme-figures: .venv/.installed
	$(PY) scripts/plot_latent.py --model result/article_z2/model.npz --out docs/figures/z2 $(data_flag) \
	    --only reconstruction scatter scatter-arrow map interpolation prior loss
	$(PY) scripts/plot_latent.py --model result/article_z20/model.npz --out docs/figures/z20 $(data_flag) \
	    --only reconstruction all-pairs interpolation tsne prior loss
	rm -rf docs/figures/z20/projector
	$(PY) scripts/plot_swiss_roll.py --out docs/figures
	cp result/article_z20/network.png docs/figures/network.png
	mkdir -p docs/explorer
	$(PY) scripts/export_web.py --model result/article_z2/model.npz --out docs/explorer/z2 $(data_flag)
	$(PY) scripts/export_web.py --model result/article_z20/model.npz --out docs/explorer/z20 $(data_flag)
	$(PY) scripts/screenshot_web.py --page docs/explorer/z2/index.html --out docs/figures/explorer.png

test: test-numpy1 test-numpy2

test-numpy1: .venv/.installed
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-numpy2: .venv-numpy2/.installed
	.venv-numpy2/bin/python -m pytest $(PYTEST_ARGS)

# On a machine with a GPU and CuPy, with the interpreter that has them (no
# venv is built there: see README "GPU"). MNIST from DATA_DIR or
# $$VAE_TEST_MNIST_DIR; no network.
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py $(data_flag)

clean:
	rm -rf .venv .venv-numpy2 build *.egg-info
