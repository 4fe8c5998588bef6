#!/usr/bin/env python
"""Training throughput of the article's VAE against the machine's GEMM rate.

    python scripts/benchmark.py                      # CPU, batch 50..500
    python scripts/benchmark.py --batch-sizes 100 --json bench.json
    python scripts/benchmark.py --gpu 0              # also a CUDA GPU
    python scripts/benchmark.py --quick              # a smoke run
    python scripts/benchmark.py --ranks 1 2          # over 1 and 2 processes

For each batch size it times training steps of the article's network
(784-500-500-20, softplus, Adam, k = 1) as ``scripts/train.py`` takes them (the
updater with its iterator, converter, NaN guard, forward, backward and Adam
step) on two paths: ``plain`` (Chainer's functions and Adam, the reference) and
``fast`` (vae/kernels/fused.py's one loss node and vae/kernels/adam.py's flat
Adam; CPU only).
In the same rounds it times the float32 matrix products that one step performs,
with the same shapes and transposes, and a large square product, and reports
the fraction of the step-GEMM rate that training reaches. Timed blocks of steps
alternate between the paths and the GEMMs, so that the load of other processes
drifts over all of them alike: compare within one run, and read the ratios
rather than the absolute values.

At batch 100 (50 with --quick) it also splits a fast step, in the same
rounds: its matrix products alone, its loss node's arithmetic alone (the
element-wise passes are the difference), Adam's update alone, and the rest
(the per-step machinery); and it times the evaluator's pass over the test
set that train.py makes every epoch (configs/default.json's k_test). Where
PyTorch is installed (the torch extra), a PyTorch twin of the network (same
layers, softplus, loss and Adam) is timed in the same rounds, and the fast
path's speed is given as a multiple of its. The header names NumPy's BLAS
and its kernel, with a note where the kernel is a generic one.

FLOPs are counted from the layer sizes (:func:`flops_per_sample`); data are
random images of MNIST's shape, which cost what real ones do. Peak memory is
the tracemalloc peak (NumPy reports its buffers to it) over a few steps, from
before the model was built: parameters, Adam state, activations and
gradients, without the data set. On a GPU it is CuPy's memory-pool peak.

--ranks R ... times the same steps (the default path) over R processes of
this machine instead, each an MPI job of its own (the mpiexec beside the
interpreter, ChainerMN's naive communicator; needs the mpi extra). Each
rank takes --batch-sizes images a step (the global batch is R times that)
and the cores are shared out: each rank's BLAS and numba get cores / R
threads, unless OMP_NUM_THREADS is set. Blocks alternate between the values
of R, as above; samples/s counts the images of all ranks.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

from vae import cli  # vae before anything imports chainer (vae/_compat.py)
from vae import config as config_lib
from vae import device as device_lib
from vae import parallel
from vae.kernels import adam
from vae.kernels import fused
from vae import model as model_lib
from vae.train import trainer as trainer_lib
from vae.atomic import output_file, write_text

import chainer  # NOQA: E402
import numpy  # NOQA: E402

#: The article's network.
SIZES = dict(n_in=784, n_latent=20, n_h=500)
ACTIVATION = 'softplus'
#: Images in an epoch of MNIST's training set.
EPOCH = 60000
#: The paths timed on the CPU and on a GPU: on the GPU, the plain path,
#: the graph path's fused step run eagerly, and the same step replayed as a
#: CUDA graph (vae/kernels/cuda_graph.py).
PATHS = ('plain', 'fast')
GPU_PATHS = ('plain', 'fused-eager', 'graph')

FULL = dict(batch_sizes=(50, 100, 200, 500), rounds=5, steps=None,
            warmup=5, square=2048, split_batch=100, test_images=10000)
QUICK = dict(batch_sizes=(50,), rounds=3, steps=3, warmup=1, square=512,
             split_batch=50, test_images=200)
#: Images in MNIST's test set, which train.py's evaluator passes over at
#: the end of every epoch.
TEST_SET = 10000
#: What the benchmark's JSON keeps of threadpoolctl's record of a BLAS.
BLAS_KEYS = ('internal_api', 'version', 'architecture', 'num_threads')
#: Images in a timed block of steps when --steps is not given.
STEP_SAMPLES = 6000
#: The same for --ranks, whose every block is an MPI job of its own.
RANK_STEP_SAMPLES = 10000


def flops_per_sample(n_in, n_latent, n_h, k=1):
    """Floating-point operations of the matrix products of one training
    example (a multiply-add counts as 2).

    Forward, each linear layer n_in -> n_out costs 2 n_in n_out per row
    (the decoder's k times, once per sample of z). Backward, each layer
    costs twice that: the weight gradient gy^T x and the input gradient
    gy W, except the first layer, whose input gradient (with respect to the
    data) is not computed. For 784-500-500-20 and k = 1: 2.628 MFLOP
    forward + 4.472 MFLOP backward = 7.1 MFLOP, 426 GFLOP an epoch.
    Element-wise work and Adam are not counted.
    """
    forward = sum(2 * a * b * (k if name.startswith('ld') else 1)
                  for name, a, b in model_lib.layer_sizes(n_in, n_latent, n_h))
    return forward + 2 * forward - 2 * n_in * n_h


def step_gemms(xp, batch, n_in, n_latent, n_h, k=1):
    """Operand pairs and a callable for the matrix products of one step.

    The shapes and transposes are those of Chainer's ``LinearFunction``
    (and of the fused node, which makes the same calls): y = x W^T,
    gW = gy^T x, gx = gy W.
    """
    rng = numpy.random.RandomState(0)

    def rand(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(numpy.float32))

    products = []  # (a, b) for a.dot(b)
    for name, a, b in model_lib.layer_sizes(n_in, n_latent, n_h):
        rows = k * batch if name.startswith('ld') else batch
        x, w, gy = rand(rows, a), rand(b, a), rand(rows, b)
        products += [(x, w.T), (gy.T, x)]
        if name != model_lib.LAYERS[0]:  # no gradient for the data
            products.append((gy, w))

    def run():
        for a, b in products:
            a.dot(b)
    return run


def time_block(func, repeat, sync):
    """Seconds per call of ``func``, over ``repeat`` calls."""
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        func()
    sync()
    return (time.perf_counter() - start) / repeat


def square_gemm_rate(xp, n, rounds, sync):
    """GFLOP/s of an n x n x n float32 product (median of ``rounds``)."""
    rng = numpy.random.RandomState(1)
    a, b = (xp.asarray(rng.standard_normal((n, n)).astype(numpy.float32))
            for _ in range(2))
    # blocks of at least 0.05 s, so that a small n is not timer noise
    repeat = max(3, int(0.05 / time_block(lambda: a.dot(b), 1, sync)))
    seconds = statistics.median(
        time_block(lambda: a.dot(b), repeat, sync) for _ in range(rounds))
    return 2.0 * n ** 3 / seconds / 1e9


class Unavailable(Exception):
    """A path cannot run on this device (the message says why)."""


class Steps(object):
    """One path's training steps, as scripts/train.py's updater takes them.

    Args:
        path (str): One of :data:`PATHS` or :data:`GPU_PATHS`.
        batch (int): Minibatch size.
        data (numpy.ndarray): Training images, (N, n_in) float32.
        device (chainer.backend.Device): Where to train.

    Raises:
        Unavailable: The path cannot run on ``device``.
    """

    def __init__(self, path, batch, data, device,
                 ranks=parallel.ONE_PROCESS):
        device_lib.seed(device, 0)
        self.model = model_lib.VAE(act_func=ACTIVATION, **SIZES)
        self.model.to_device(device)
        graph = path in ('graph', 'fused-eager')
        chosen = trainer_lib.training_path(
            self.model, device, alpha=0.001, fast=path == 'fast',
            cuda_graph=graph, ranks=ranks)
        if chosen.name != ('graph' if graph else path):
            raise Unavailable('%s path unavailable on %s' % (path, device))
        chosen.optimizer.setup(self.model)
        ranks.start_optimizer(chosen.optimizer, self.model)
        iterator = chainer.iterators.SerialIterator(data, batch)
        if path == 'fused-eager':  # the graph path's step, not captured
            from vae.train.graph_updater import GraphUpdater
            self._updater = GraphUpdater(iterator, chosen.optimizer, device,
                                         0, self.model, k=1, C=1.0,
                                         capture=False)
        else:
            self._updater = chosen.make_updater(iterator, chosen.optimizer,
                                                0, 1.0, 1)
        self.optimizer = chosen.optimizer
        self.make_loss_func = chosen.make_loss_func
        self._reporter = chainer.Reporter()
        self._reporter.add_observer('main', self.model)

    def step(self):
        with self._reporter.scope({}):
            self._updater.update()


class TorchSteps(object):
    """Training steps of a PyTorch twin of the network: the same layers,
    activation, loss (k = 1) and Adam (PyTorch's defaults are Chainer's),
    on shuffled minibatches of ``data``; written as a PyTorch user would."""

    def __init__(self, torch, batch, data):
        torch.manual_seed(0)
        self._torch = torch
        self.layers = {name: torch.nn.Linear(n_in, n_out) for name, n_in, n_out
                       in model_lib.layer_sizes(**SIZES)}
        self.optimizer = torch.optim.Adam(
            [p for layer in self.layers.values() for p in layer.parameters()],
            lr=0.001)
        self._data = torch.from_numpy(data)
        self._batch = batch
        self._order, self._next = None, len(data)

    def loss(self, x, eps=None):
        """The negative ELBO of the batch ``x``, as vae.model computes it,
        with the noise ``eps`` (drawn when not given)."""
        f = self._torch.nn.functional
        layer = self.layers
        h = f.softplus(layer['le2'](f.softplus(layer['le1'](x))))
        mu, ln_var = layer['le3_mu'](h), layer['le3_ln_var'](h)
        if eps is None:
            eps = self._torch.randn_like(mu)
        z = mu + self._torch.exp(0.5 * ln_var) * eps
        logits = layer['ld3'](f.softplus(layer['ld2'](f.softplus(
            layer['ld1'](z)))))
        reconstr = f.binary_cross_entropy_with_logits(
            logits, x, reduction='sum') / len(x)
        kl = 0.5 * (mu * mu + ln_var.exp() - ln_var - 1).sum() / len(x)
        return reconstr + kl

    def step(self):
        if self._next + self._batch > len(self._data):  # a new epoch
            self._order = self._torch.randperm(len(self._data))
            self._next = 0
        x = self._data[self._order[self._next:self._next + self._batch]]
        self._next += self._batch
        self.optimizer.zero_grad()
        loss = self.loss(x)
        loss.backward()
        self.optimizer.step()
        return loss.item()  # as the updater reads the loss (its NaN guard)


def import_torch():
    """PyTorch, or None where it is not installed (the ``torch`` extra)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def fused_pass(model, x, k=1, C=1.0):
    """One forward and backward of the fast path's loss node without
    Chainer around it: the noise, then :func:`vae.kernels.fused.forward` and
    :func:`vae.kernels.fused.backward` into a flat gradient buffer, as
    :class:`vae.kernels.fused.VAELoss` calls them."""
    names = adam.param_names(model)
    params = dict((name, p.array) for name, p in model.namedparams())
    grads = dict(zip(names, adam.flat_buffer(
        numpy, [params[n].shape for n in names], zeros=False)[1]))
    act = fused.KERNELS[model.activation]

    def run():
        eps = device_lib.standard_normal(
            numpy, (k * len(x), model.n_latent), numpy.float32)
        cache = fused.forward(numpy, numpy.dot, params, x, eps, act, k,
                              C)[-1]
        fused.backward(numpy, numpy.dot, params, cache, grads,
                       numpy.float32(1), numpy.float32(C))
    return run


def evaluation_pass(trainer, images, batch, k_test):
    """One pass of train.py's evaluator (Chainer's Evaluator with the
    path's loss at ``k_test`` samples) over ``images``."""
    iterator = chainer.iterators.SerialIterator(images, batch, repeat=False,
                                                shuffle=False)
    evaluator = chainer.training.extensions.Evaluator(
        iterator, trainer.model,
        eval_func=trainer.make_loss_func(C=1.0, k=k_test))
    reporter = chainer.Reporter()  # the trainer's, which it reports to

    def run():
        with reporter.scope({}):
            evaluator()
    return run


def peak_memory(path, batch, data, device, steps):
    """Peak bytes over building the model and ``steps`` training steps."""
    pool = device_lib.memory_pool(device)
    if pool is None:
        tracemalloc.start()
        try:
            trainer = Steps(path, batch, data, device)
            for _ in range(steps):
                trainer.step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    pool.free_all_blocks()
    trainer = Steps(path, batch, data, device)
    for _ in range(steps):
        trainer.step()
    # the pool keeps what it held at its peak
    return pool.total_bytes()


def benchmark(device, batch_sizes, rounds, steps, warmup, square, paths,
              split_batch=None, test_images=TEST_SET, torch=None):
    """Measures every path at every batch size on ``device``.

    With ``torch`` (the module), a PyTorch twin of the network is timed in
    the same rounds (on the CPU). At ``split_batch``, the parts of a fast
    step are timed in the same rounds too (:func:`split_of_step`), and one
    pass of the evaluator over ``test_images`` images.

    Returns:
        dict: ``square_gflops`` and ``rows``, one dict per (batch, path)
        with s/step, s/epoch, samples/s, GFLOP/s, the step-GEMM rate and
        the fractions of both GEMM rates, and the peak memory; ``split``
        where it was timed.
    """
    xp = device.xp

    def sync():
        device_lib.synchronize(device)
    flops = flops_per_sample(**SIZES)
    result = {'square_n': square, 'flops_per_sample': flops, 'rows': [],
              'square_gflops': square_gemm_rate(xp, square, rounds, sync)}
    for batch in batch_sizes:
        n_steps = steps or max(2, STEP_SAMPLES // batch)
        rng = numpy.random.RandomState(0)
        data = rng.random_sample(
            ((n_steps + warmup + 1) * batch, SIZES['n_in'])).astype(
                numpy.float32)
        trainers = {}
        for path in paths:
            try:
                trainers[path] = Steps(path, batch, data, device)
            except Unavailable as e:
                print('note: %s; not timed' % e, file=sys.stderr)
        if torch is not None and device_lib.is_cpu(device):
            trainers['pytorch'] = TorchSteps(torch, batch, data)
        timed = {'gemm': step_gemms(xp, batch, **SIZES)}
        timed.update((path, t.step) for path, t in trainers.items())
        split = batch == split_batch and 'fast' in trainers
        if split:
            timed.update(split_parts(trainers['fast'], data[:batch],
                                     test_images))
        for trainer in trainers.values():
            for _ in range(warmup):
                trainer.step()
        for func in timed.values():
            func()
        times = {name: [] for name in timed}
        for _ in range(rounds):  # every item once a round: drift hits all
            for name, func in timed.items():
                repeat = 1 if name == 'test loss' else n_steps
                times[name].append(time_block(func, repeat, sync))
        median = {name: statistics.median(t) for name, t in times.items()}
        gemm_rate = flops * batch / median['gemm'] / 1e9
        for path in trainers:
            step = median[path]
            rate = flops * batch / step / 1e9
            row = {
                'batch': batch, 'path': path, 'steps': n_steps,
                'rounds': rounds, 's_per_step': step,
                'all_s_per_step': times[path],
                's_per_epoch': step * EPOCH / batch,
                'samples_per_s': batch / step, 'gflops': rate,
                'step_gemm_gflops': gemm_rate,
                'fraction_of_step_gemm': rate / gemm_rate,
                'fraction_of_square_gemm': rate / result['square_gflops'],
                'peak_memory_bytes': None if path == 'pytorch' else
                peak_memory(path, batch, data, device, max(2, warmup)),
            }
            result['rows'].append(row)
        if split:
            result['split'] = split_of_step(batch, median, test_images)
    return result


def split_parts(trainer, x, test_images):
    """The parts of a fast step that are timed alone, besides the matrix
    products: the fused loss's arithmetic on ``x``, Adam's update, and the
    evaluator's pass over ``test_images`` random images."""
    images = numpy.random.RandomState(1).random_sample(
        (test_images, SIZES['n_in'])).astype(numpy.float32)
    return {'loss node': fused_pass(trainer.model, x),
            'adam': trainer.optimizer.update,
            'test loss': evaluation_pass(trainer, images, len(x),
                                         config_lib.defaults().k_test)}


def split_of_step(batch, median, test_images):
    """Where a fast step's time goes, from the medians (seconds) of the
    step, its matrix products alone, its loss node's arithmetic alone, Adam
    alone and the evaluator; the element-wise passes and the per-step
    machinery (iterator, converter, updater, reporter, Chainer's node) are
    the differences."""
    step, node = median['fast'], median['loss node']
    defaults = config_lib.defaults()
    test_epoch = median['test loss'] * TEST_SET / test_images
    split = {'batch': batch, 'step_s': step, 'products_s': median['gemm'],
             'elementwise_s': node - median['gemm'], 'adam_s': median['adam'],
             'machinery_s': step - node - median['adam'],
             'train_s_per_epoch': step * EPOCH / batch,
             'test_loss_s_per_epoch': test_epoch,
             'k_test': defaults.k_test}
    if batch == defaults.batchsize:
        split['default_run_s'] = defaults.epoch * (
            split['train_s_per_epoch'] + test_epoch)
        split['default_epochs'] = defaults.epoch
    return split


def format_split(split):
    """The split of :func:`split_of_step` as lines of text."""
    ms = [('matrix products (the same shapes, alone)', split['products_s']),
          ('element-wise passes (loss node alone - products)',
           split['elementwise_s']),
          ("Adam (FlatAdam's one pass)", split['adam_s']),
          ('per-step machinery (step - loss node - Adam)',
           split['machinery_s'])]
    lines = ['a fast step at batch %d: %.2f ms' % (split['batch'],
                                                   1e3 * split['step_s'])]
    lines += ['  %-50s %6.2f ms  %3.0f %%' % (name, 1e3 * s,
                                              100 * s / split['step_s'])
              for name, s in ms]
    lines.append('test loss each epoch (%d images, k = %d): %.2f s, beside '
                 '%.2f s of training' % (TEST_SET, split['k_test'],
                                         split['test_loss_s_per_epoch'],
                                         split['train_s_per_epoch']))
    if 'default_run_s' in split:
        lines.append('configs/default.json (%d epochs): about %.0f min '
                     '(fast path, with its test loss)'
                     % (split['default_epochs'], split['default_run_s'] / 60))
    return '\n'.join(lines)


COLUMNS = (  # (header, cell text from a row)
    ('batch', lambda r: '%d' % r['batch']),
    ('path', lambda r: r['path']),
    ('s/epoch', lambda r: '%.2f' % r['s_per_epoch']),
    ('samples/s', lambda r: '%.0f' % r['samples_per_s']),
    ('GFLOP/s', lambda r: '%.1f' % r['gflops']),
    ('GEMM GFLOP/s', lambda r: '%.1f' % r['step_gemm_gflops']),
    ('of GEMM', lambda r: '%.0f %%' % (100 * r['fraction_of_step_gemm'])),
    ('of square', lambda r: '%.0f %%'
     % (100 * r['fraction_of_square_gemm'])),
    ('speed-up', lambda r: '%.2fx' % r['speedup']),
    ('peak MB', lambda r: '-' if r['peak_memory_bytes'] is None
     else '%.1f' % (r['peak_memory_bytes'] / 2.0 ** 20)),
)


def format_table(result):
    """The results as a text table, with the fast path's speed-up."""
    plain = {r['batch']: r['s_per_step'] for r in result['rows']
             if r['path'] == 'plain'}
    rows = []
    for r in result['rows']:
        r = dict(r, speedup=plain.get(r['batch'], r['s_per_step'])
                 / r['s_per_step'])
        rows.append([cell(r) for _, cell in COLUMNS])
    headers = [h for h, _ in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(headers, *rows)]
    lines = ['  '.join(x.rjust(w) for x, w in zip(line, widths))
             for line in [headers] + rows]
    head = ['device: %s; float32 %d^3 GEMM: %.1f GFLOP/s; %.2f MFLOP per '
            'example (matrix products)'
            % (result['device'], result['square_n'], result['square_gflops'],
               result['flops_per_sample'] / 1e6)]
    if 'blas' in result:
        head.append('BLAS: %s' % device_lib.describe_blas(result['blas']))
    if 'torch' in result:
        head.append('PyTorch twin: PyTorch %s' % result['torch'])
    if result.get('blas_note'):
        head.append('note: %s' % result['blas_note'])
    tail = ['GEMM GFLOP/s: the rate of one step\'s matrix products alone; '
            'of GEMM, of square: the share of that rate and of the square '
            'product\'s that training reaches; speed-up: over plain']
    tail += torch_ratios(result['rows'])
    if 'split' in result:
        tail.append(format_split(result['split']))
    return '\n'.join(head + lines + tail)


def torch_ratios(rows):
    """A line per batch size timed on both the fast path and PyTorch: the
    fast path's speed as a multiple of PyTorch's."""
    step = {(r['batch'], r['path']): r['s_per_step'] for r in rows}
    return ['batch %d: fast path at %.2fx the speed of PyTorch (%.2f vs '
            '%.2f s/epoch; 1.2x would be %.2f s/epoch)'
            % (batch, step[batch, 'pytorch'] / step[batch, 'fast'],
               step[batch, 'fast'] * EPOCH / batch,
               step[batch, 'pytorch'] * EPOCH / batch,
               step[batch, 'pytorch'] * EPOCH / batch / 1.2)
            for batch, path in step
            if path == 'pytorch' and (batch, 'fast') in step]



RANK_COLUMNS = (
    ('ranks', lambda r: '%d' % r['ranks']),
    ('threads/rank', lambda r: r['threads']),
    ('batch/rank', lambda r: '%d' % r['batch']),
    ('global batch', lambda r: '%d' % (r['batch'] * r['ranks'])),
    ('path', lambda r: r['path']),
    ('s/epoch', lambda r: '%.2f' % r['s_per_epoch']),
    ('samples/s', lambda r: '%.0f' % r['samples_per_s']),
    ('speed-up', lambda r: '%.2fx' % r['speedup']),
)


def rank_steps(ranks, batch, steps, warmup):
    """Seconds per training step on every rank of ``ranks`` (the slowest
    rank's), timed between barriers; each rank trains on random images of
    its own."""
    device = device_lib.get_device(-1)
    rng = numpy.random.RandomState(ranks.rank)
    data = rng.random_sample(((steps + warmup + 1) * batch,
                              SIZES['n_in'])).astype(numpy.float32)
    trainer = Steps(PATHS[1], batch, data, device, ranks)
    for _ in range(warmup):
        trainer.step()
    ranks.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    ranks.barrier()
    return (time.perf_counter() - start) / steps


def launch_ranks(ranks, batch, steps, warmup):
    """Seconds per step of ``ranks`` processes, as an MPI job of its own
    (this script's hidden ``--rank-worker`` mode)."""
    mpiexec = pathlib.Path(sys.executable).parent / 'mpiexec'
    if not mpiexec.is_file():
        raise OSError('--ranks needs the mpiexec of the mpi extra beside %s '
                      '(pip install -e ".[mpi]")' % sys.executable)
    env = dict(os.environ)
    if 'OMP_NUM_THREADS' not in env:  # the cores shared out among the ranks
        threads = str(max(1, (os.cpu_count() or 1) // ranks))
        for name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                     'MKL_NUM_THREADS', 'NUMBA_NUM_THREADS'):
            env[name] = threads
    with tempfile.TemporaryDirectory() as folder:
        result = os.path.join(folder, 'seconds')
        subprocess.run(
            [str(mpiexec), '-n', str(ranks), sys.executable,
             os.path.abspath(__file__), '--rank-worker', result,
             '--batch-sizes', str(batch), '--steps', str(steps),
             '--warmup', str(warmup)], env=env, check=True, timeout=600)
        with open(result) as f:
            return float(f.read()), env['OMP_NUM_THREADS']


def benchmark_ranks(ranks, batch_sizes, rounds, steps, warmup):
    """Training steps over each number of processes in ``ranks``.

    Returns:
        dict: ``rows``, one per (batch, ranks), with s/step, s/epoch,
        samples/s (all ranks) and the speed-up over the first of ``ranks``.
    """
    n_steps = {b: steps or max(2, RANK_STEP_SAMPLES // b)
               for b in batch_sizes}
    times = {(b, r): [] for b in batch_sizes for r in ranks}
    threads = {}
    for _ in range(rounds):  # every setting once a round: drift hits all
        for batch in batch_sizes:
            for r in ranks:
                seconds, threads[r] = launch_ranks(r, batch, n_steps[batch],
                                                   warmup)
                times[batch, r].append(seconds)
    rows = []
    for batch in batch_sizes:
        for r in ranks:
            step = statistics.median(times[batch, r])
            rows.append({'ranks': r, 'threads': threads[r], 'batch': batch,
                         'path': PATHS[1], 'steps': n_steps[batch],
                         'rounds': rounds, 's_per_step': step,
                         'all_s_per_step': times[batch, r],
                         's_per_epoch': step * EPOCH / (batch * r),
                         'samples_per_s': batch * r / step})
    for row in rows:
        first = next(other for other in rows if other['batch'] == row['batch'])
        row['speedup'] = row['samples_per_s'] / first['samples_per_s']
    return {'rows': rows}


def format_rank_table(result):
    """The results of :func:`benchmark_ranks` as a text table."""
    rows = [[cell(r) for _, cell in RANK_COLUMNS] for r in result['rows']]
    headers = [h for h, _ in RANK_COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(headers, *rows)]
    return '\n'.join(
        ['device: %s, over MPI processes (ChainerMN, naive communicator)'
         % result['device']]
        + ['  '.join(x.rjust(w) for x, w in zip(line, widths))
           for line in [headers] + rows]
        + ['s/epoch: 60000 images; speed-up: samples/s over the first row '
           'of the batch size'])


#: The host's time per graph iteration that the graph path aims at.
HOST_COST_TARGET = 30e-6


def graph_host_cost(iterations=2000, batch=100, rounds=5):
    """Seconds of host work in one iteration of the graph path, measured on
    the CPU: ``GraphUpdater.update()`` driven on the stand-in GPU of
    tests/standin.py (needs the test extra's pytest), whose graph replay is
    a no-op launch, so that what is timed is the Python around a replay
    (a real one adds a ``cudaGraphLaunch``, a few microseconds). The
    iterations timed are kept inside one epoch (the iterator is put back
    to its second batch after each: the epoch's draws at its start, once
    in 600 iterations of MNIST, are not counted); the median of
    ``rounds`` blocks.

    Returns:
        dict: ``s_per_iteration`` and ``launches`` (graph launches a timed
        iteration made).
    """
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent
                           / 'tests'))
    import pytest
    import standin
    patch = pytest.MonkeyPatch()
    try:
        with standin.stand_in_gpu(patch) as gpu, standin.fake_nvmath(patch):
            patch.setattr(device_lib, 'capture',
                          standin.replaying_capture(device_lib.capture))
            device_lib.seed(gpu, 0)
            model = model_lib.VAE(act_func=ACTIVATION, **SIZES)
            model.to_device(gpu)
            path = trainer_lib.training_path(model, gpu, 1e-3, cuda_graph=True)
            if path.name != 'graph':
                raise RuntimeError('the graph path did not start')
            path.optimizer.setup(model)
            data = numpy.zeros((3 * batch, SIZES['n_in']), numpy.float32)
            updater = path.make_updater(
                chainer.iterators.SerialIterator(data, batch),
                path.optimizer, 0, 1.0, 1)
            updater.update()  # build, capture, the epoch's draws
            iterator = updater.get_iterator('main')
            gpu.xp.kernels_as_noops = True
            times = []
            for _ in range(rounds):
                launches = gpu.xp.launches
                start = time.perf_counter()
                for _ in range(iterations):
                    updater.update()
                    iterator.current_position = 1
                times.append((time.perf_counter() - start) / iterations)
                launched = (gpu.xp.launches - launches) / iterations
    finally:
        patch.undo()
    return {'s_per_iteration': statistics.median(times),
            'launches': launched}


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--batch-sizes', '-b', type=cli.positive_int, nargs='+',
                   help='batch sizes (default %s; --quick: %s)'
                   % (' '.join(map(str, FULL['batch_sizes'])),
                      ' '.join(map(str, QUICK['batch_sizes']))))
    p.add_argument('--rounds', type=cli.positive_int,
                   help='timed blocks per path and batch size; the median '
                   'counts (default %d)' % FULL['rounds'])
    p.add_argument('--steps', type=cli.positive_int,
                   help='training steps in a block (default: %d images\' '
                   'worth)' % STEP_SAMPLES)
    p.add_argument('--gpu', '-g', type=int, default=-1,
                   help='also run on this CUDA GPU (CuPy); the fast path is '
                   'CPU only (default: CPU only)')
    p.add_argument('--quick', action='store_true',
                   help='a smoke run: %d steps, batch %d, small square GEMM'
                   % (QUICK['steps'], QUICK['batch_sizes'][0]))
    p.add_argument('--no-torch', dest='torch', action='store_false',
                   help='leave out the PyTorch twin (timed on the CPU '
                   'where PyTorch is installed: the torch extra)')
    p.add_argument('--json', metavar='FILE',
                   help='also write the results to FILE (JSON)')
    p.add_argument('--ranks', type=cli.positive_int, nargs='+',
                   help='time the %s path over each of these numbers of '
                   'processes on this machine instead (MPI; see above)'
                   % PATHS[1])
    p.add_argument('--host-cost', action='store_true',
                   help="only the host's time per iteration of the graph "
                   'path, on the CPU with a stand-in GPU whose kernels do '
                   'nothing (needs pytest: the test extra)')
    p.add_argument('--rank-worker', metavar='FILE', help=argparse.SUPPRESS)
    p.add_argument('--warmup', type=int, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.rank_worker:  # one rank of a job that launch_ranks started
        ranks = parallel.create_ranks('naive')
        seconds = rank_steps(ranks, args.batch_sizes[0], args.steps,
                             args.warmup)
        if ranks.is_root:
            write_text(args.rank_worker, repr(seconds))
        return 0
    if args.host_cost:
        cost = graph_host_cost(iterations=200 if args.quick else 2000)
        print('graph path, host work per iteration: %.1f us (%g graph '
              'launch; stand-in GPU, kernels as no-ops; target <= %d us)'
              % (cost['s_per_iteration'] * 1e6, cost['launches'],
                 HOST_COST_TARGET * 1e6))
        return 0
    preset = dict(QUICK if args.quick else FULL)
    for key in ('batch_sizes', 'rounds', 'steps'):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    if args.ranks:
        try:
            json_path = args.json and output_file(args.json,
                                                  'benchmark.json')
            result = benchmark_ranks(
                args.ranks, preset['batch_sizes'], preset['rounds'],
                preset['steps'], preset['warmup'])
        except (OSError, subprocess.SubprocessError) as e:
            sys.exit('error: %s' % e)
        result['device'] = device_lib.describe(device_lib.get_device(-1))
        print(format_rank_table(result), flush=True)
        if json_path:
            write_text(json_path, json.dumps(result, indent=2) + '\n')
        return 0
    try:
        json_path = args.json and output_file(args.json, 'benchmark.json')
        runs = [(device_lib.get_device(-1), PATHS)]
        if args.gpu >= 0:
            runs.append((device_lib.get_device(args.gpu), GPU_PATHS))
    except (device_lib.DeviceError, OSError) as e:
        sys.exit('error: %s' % e)
    torch = import_torch() if args.torch else None
    results = []
    for device, paths in runs:
        result = benchmark(device, paths=paths, torch=torch, **preset)
        result['device'] = device_lib.describe(device)
        if device_lib.is_cpu(device):
            result['blas'] = [
                {key: info.get(key) for key in BLAS_KEYS}
                for info in device_lib.numpy_blas()]
            result['blas_note'] = device_lib.blas_note()
        if torch is not None:
            result['torch'] = '%s, %d threads' % (torch.__version__,
                                                  torch.get_num_threads())
        results.append(result)
        print(format_table(result), flush=True)
    if json_path:
        write_text(json_path, json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
