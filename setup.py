"""chainer-vae: the Variational Autoencoder of the Qiita article
"Variational Autoencoder徹底解説" (2017), reimplemented in Chainer.

Install through the Makefile (``make venv``), which applies a file of
``constraints/`` so that Chainer 7.8.1's sdist builds on a fresh machine.
"""
from setuptools import find_packages, setup

# scripts/export_onnx.py: Chainer's own exporter (onnx_chainer, inside the
# chainer package) reads onnx.mapping, which onnx 1.18 is the last to have;
# both wheels install for Python 3.11 and 3.12 and run on NumPy 1.26 and 2
# (onnxruntime 1.32 needs Python >= 3.11).
ONNX = ["onnx==1.18.0", "onnxruntime==1.32.0"]
# The explorer page's browser tests and its screenshot drive Debian's
# chromium through chromedriver (given by path: Selenium downloads nothing).
WEB = ["selenium>=4.11"]
# vae/kernels/cuda_graph.py: cuBLAS through NVIDIA's bindings, which a CUDA graph can
# capture (CuPy refuses its own cuBLAS calls then), all built for CUDA 12:
# nvmath-python's cu12 extra brings cuBLAS 12, and cuda-bindings stays below
# 13, whose runtime a CUDA-12 CuPy cannot share a process with.
GPU_GRAPH = ["cupy-cuda12x", "nvmath-python[cu12]>=1.0,<2",
             "cuda-bindings>=12.8,<13"]

setup(
    name="chainer-vae",
    version="0.1.0",
    description="Reference Chainer implementation of the VAE of "
                "'Variational Autoencoder徹底解説' (Qiita, 2017)",
    license="MIT",
    # configs/ (the one source of defaults) is installed inside the package
    # as vae/configs, where vae/config.py looks first
    packages=find_packages(include=["vae", "vae.*"]) + ["vae.configs"],
    package_dir={"vae.configs": "configs"},
    # and the explorer page's template, style and script (vae/export/explorer.py)
    package_data={"vae.configs": ["*.json"], "vae.export": ["web_assets/*"]},
    python_requires=">=3.9",
    install_requires=[
        "chainer==7.8.1",
        # NumPy 1.x and 2.x both work: vae/_compat.py supplies what Chainer
        # 7.8.1 reads from NumPy 1 (constraints/ pins each tested stack).
        "numpy>=1.21",
        "six",
        "matplotlib>=3.5",
        "scikit-learn>=1.0",
        "Pillow>=9",
        "tqdm>=4.60",
        # environment.json: the BLAS library and its thread count
        "threadpoolctl>=3",
        # vae/kernels/adam.py: FlatAdam's one-pass update (0.60: NumPy 2, Python 3.12)
        "numba>=0.60",
    ],
    entry_points={
        "console_scripts": [
            "vae-train = vae.commands.train:main",
            "vae-evaluate = vae.commands.evaluate:main",
            "vae-plot = vae.commands.plot_latent:main",
            "vae-swiss-roll = vae.commands.plot_swiss_roll:main",
            "vae-export-web = vae.commands.export_web:main",
            "vae-export-onnx = vae.commands.export_onnx:main",
        ],
    },
    extras_require={
        # CuPy's prebuilt wheels, by CUDA version (plain "cupy" builds
        # from source)
        "gpu-cuda12": ["cupy-cuda12x"],
        "gpu-cuda13": ["cupy-cuda13x"],
        # vae/kernels/cuda_graph.py: cuBLAS through NVIDIA's bindings, which a CUDA
        # graph can capture (CuPy refuses its own cuBLAS calls then)
        "gpu-graph": GPU_GRAPH,
        # scripts/benchmark.py times a PyTorch twin of the network beside
        # the Chainer paths where PyTorch is installed (never required)
        "torch": ["torch>=2"],
        "onnx": ONNX,
        "web": WEB,
        # Several processes (scripts/train.py --communicator,
        # docs/processes.md): mpi4py's binary wheel and MPICH's wheel, whose
        # mpiexec lands beside the interpreter; no system MPI needed.
        # MPICH rather than Open MPI: its mpiexec runs as root (CI does)
        # without extra flags. Tested: mpi4py 4.1.2, mpich 5.0.2.
        "mpi": ["mpi4py>=4.1", "mpich>=5"],
        # wheel: tests/test_install.py builds the package without network
        "test": ["pytest>=7", "scipy", "nbclient>=0.7", "nbformat>=5",
                 "ipykernel>=6", "wheel"] + ONNX + WEB,
    },
)
