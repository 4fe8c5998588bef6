# Two entry points for a fresh machine with Python 3.11:
#   make run    set up .venv, train the default config, then make the figures
#   make test   set up both tested stacks and run the whole suite in each,
#               then the numerical tests under other BLAS kernels:
#               .venv (NumPy 2.4, the default) and .venv-numpy1 (NumPy 1.26)
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
        readme-figures readme-numbers test test-numpy1 test-numpy2 test-kernels gpu-check \
        clean

# $(1): venv folder, $(2): constraints file (the stack). The stamp names
# the stack, so that a venv of another stack is rebuilt, not reused.
# PIP_CONSTRAINT also reaches the isolated environment in which pip builds
# Chainer's sdist, whose setup.py needs pkg_resources (setuptools < 74).
define venv_rule
$(1)/.installed-$(2): setup.py constraints/$(2).txt
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	PIP_CONSTRAINT=$(CURDIR)/constraints/$(2).txt $(1)/bin/python -m pip \
	    install --quiet --disable-pip-version-check "setuptools<74" -e ".[test,mpi]"
	touch $$@
endef
# The default stack is NumPy 2: its OpenBLAS (0.3.31) has kernels for
# current CPUs, where NumPy 1.26's (0.3.23) falls back to a generic one on
# some (docs/speed.md). NumPy 1.26 stays tested as the article's era.
$(eval $(call venv_rule,.venv,numpy2))
$(eval $(call venv_rule,.venv-numpy1,numpy1))
VENV := .venv/.installed-numpy2

venv: $(VENV)

train: $(VENV)
	$(PY) scripts/train.py --config $(CONFIG) --out $(OUT) $(data_flag) $(TRAIN_ARGS)

figures: $(VENV)
	$(PY) scripts/plot_latent.py --model $(OUT)/model.npz $(data_flag)

run: train figures

# The latent space explorer of $(OUT)/model.npz: open $(OUT)/explorer/index.html.
explorer: $(VENV)
	$(PY) scripts/export_web.py --model $(OUT)/model.npz --out $(OUT)/explorer $(data_flag)

# The article's two published runs, then the figures shown in the README.
article: $(VENV)
	$(PY) scripts/train.py --config configs/article_z20.json --out result/article_z20 $(data_flag) $(TRAIN_ARGS)
	$(PY) scripts/train.py --config configs/article_z2.json --out result/article_z2 $(data_flag) $(TRAIN_ARGS)

# Their evaluation on the whole test set (K = 5000: about 20 minutes each on
# 2 cores), and the speed table; readme-numbers prints the README's tables.
article-eval: $(VENV)
	$(PY) scripts/evaluate.py --model result/article_z20/model.npz $(data_flag)
	$(PY) scripts/evaluate.py --model result/article_z2/model.npz $(data_flag)

benchmark: $(VENV)
	$(PY) scripts/benchmark.py --json result/benchmark.json

readme-numbers: $(VENV)
	$(PY) scripts/readme_numbers.py result

readme-figures: $(VENV)
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

test: test-numpy2 test-numpy1 test-kernels

test-numpy2: $(VENV)
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-numpy1: .venv-numpy1/.installed-numpy1
	.venv-numpy1/bin/python -m pytest $(PYTEST_ARGS)

# The tests that compare numbers (marker "numerics") again under kernels
# other CPUs run (Haswell: AVX2, Sandybridge: AVX), in both stacks, and on
# one BLAS thread: an exact equality that one kernel alone keeps fails here.
KERNELS := OPENBLAS_CORETYPE=Haswell OPENBLAS_CORETYPE=Sandybridge
test-kernels: $(VENV) .venv-numpy1/.installed-numpy1
	set -e; for venv in .venv .venv-numpy1; do for kernel in $(KERNELS); do \
	    echo "== $$venv $$kernel"; \
	    env $$kernel $$venv/bin/python -m pytest -q -m numerics $(PYTEST_ARGS); \
	done; done
	@echo "== .venv OPENBLAS_NUM_THREADS=1"
	OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -q -m numerics $(PYTEST_ARGS)

# On a machine with a GPU and CuPy, with the interpreter that has them (no
# venv is built there: see docs/gpu.md). MNIST from DATA_DIR or
# $$VAE_TEST_MNIST_DIR; no network. A step that cannot run fails the check;
# GPU_CHECK_FLAGS='--allow-skip graph' accepts a graph path that cannot run.
GPU_PYTHON ?= python3
GPU_CHECK_FLAGS ?=
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py $(data_flag) $(GPU_CHECK_FLAGS)

clean:
	rm -rf .venv .venv-numpy1 .venv-numpy2 build *.egg-info
