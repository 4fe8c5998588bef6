"""Training with Chainer's Trainer, as Chainer's own VAE example does.

The loop is the article's (Adam, shuffled minibatches, the negative ELBO
with k samples) run by ``chainer.training.Trainer``. What this module adds
is what a long run needs: a run folder that one run holds at a time, a
snapshot every epoch that also holds the random state (so that a resumed run
equals an uninterrupted one), a guard that stops on a non-finite loss
before any weight changes, atomic outputs, and checks that a resumed run has
the settings of the run it continues (:mod:`vae.train.resume`).

Given the ranks of an MPI job (``ranks``, a :class:`vae.parallel.Ranks`),
the same loop runs on every rank on its share of the data (:mod:`vae.parallel`
says who does what); alone (:data:`vae.parallel.ONE_PROCESS`), each of their
parts does the trivial thing.
"""
import contextlib
import functools
import json
import os
import sys
from typing import Callable, NamedTuple

import chainer
import numpy
from chainer import training
from chainer.training import extensions

from vae import atomic, config as config_lib
from vae import device as device_lib
from vae import memory
from vae import parallel
from vae.train import extensions as vae_extensions
from vae.kernels import adam
from vae.kernels import fused
from vae.train import resume as resume_lib
from vae.train import run_folder
from vae.train import model_files
from vae.model import VAE
from vae.train.updater import NonFiniteLossError, Updater

#: The entries PrintReport shows, one line per epoch.
PRINTED = ['epoch', 'main/loss', 'validation/main/loss', 'main/reconstr',
           'validation/main/reconstr', 'main/kl', 'validation/main/kl',
           'elapsed_time']


def build_model(config, n_in=784):
    """The VAE that ``config`` describes."""
    return VAE(n_in, config.n_latent, config.n_h, config.activation)


class Path(NamedTuple):
    """The code that trains a model (see :func:`training_path`)."""

    #: 'graph', 'fast' or 'plain'.
    name: str
    #: ``make_loss_func(C=..., k=...)``: a loss function for the Evaluator
    #: (and for the updater, except on the graph path).
    make_loss_func: Callable
    #: The optimizer, not yet set up.
    optimizer: chainer.Optimizer
    #: ``make_updater(iterator, optimizer, seed, C, k)``: the updater.
    make_updater: Callable


def training_path(model, device, alpha, fast=True, cuda_graph=False,
                  ranks=parallel.ONE_PROCESS):
    """The path that trains ``model`` on ``device``, of those asked for, and
    the one place where the path meets the ``ranks`` of a job.

    * ``graph``: on a GPU, the whole step captured as one CUDA graph
      (:mod:`vae.kernels.cuda_graph`), when ``cuda_graph`` is asked for (one
      process: the graph cannot include the communicator's all-reduce);
    * ``fast``: on the CPU, ``model.get_loss_func(fused=True)`` and
      :class:`vae.kernels.adam.FlatAdam` (bit for bit the plain path's);
    * ``plain``: ``model.get_loss_func()`` and ``chainer.optimizers.Adam``.

    A path asked for that cannot run here says why on stderr, in one line,
    and the next one runs. Over several processes, the optimizer is
    ChainerMN's multi-node optimizer around the path's
    (:meth:`vae.parallel.Ranks.optimizer`), which averages every gradient
    over the ranks before the update: the communicator averages the
    gradient arrays in place, and the fast path's gradients stay views of
    its flat buffer.
    """
    def note(text):
        if ranks.is_root:
            print('note: %s' % text, file=sys.stderr)

    def updater(make_loss_func):
        return lambda iterator, optimizer, seed, C, k: Updater(
            iterator, optimizer, make_loss_func(C=C, k=k), device, seed,
            ranks)

    fused_loss = functools.partial(model.get_loss_func, fused=True)
    if cuda_graph:
        from vae.kernels import cuda_graph as graph_lib
        from vae.train import graph_updater
        why_not = (ranks.cuda_graph_obstacle
                   or graph_lib.unsupported_reason(model, device)
                   or device_lib.use_stream_ordered_memory(device))
        if why_not:
            note('%s; training without the CUDA graph' % why_not)
        else:
            return Path('graph', fused_loss,
                        chainer.optimizers.Adam(alpha=alpha),
                        lambda iterator, optimizer, seed, C, k:
                        graph_updater.GraphUpdater(iterator, optimizer, device,
                                               seed, model, k, C))
    why_not = fast and fused.unsupported_reason(model, device)
    if why_not:
        note('%s; training on the plain path' % why_not)
    if fast and not why_not:
        return Path('fast', fused_loss,
                    ranks.optimizer(adam.FlatAdam(alpha=alpha)),
                    updater(fused_loss))
    return Path('plain', model.get_loss_func,
                ranks.optimizer(chainer.optimizers.Adam(alpha=alpha)),
                updater(model.get_loss_func))


def train(config, out, train_data, test_data, device, resume=None,
          progress=True, n_in=784, explicit_config=False,
          ranks=parallel.ONE_PROCESS):
    """Train a VAE as ``config`` says, writing everything under ``out``.

    Args:
        config (Config): A resolved configuration (:func:`vae.config.resolve`).
        out (str): Output folder; an earlier run there is continued from its
            latest snapshot.
        train_data, test_data: Datasets of images, (N, n_in) float32.
        device (chainer.backend.Device): Where to train.
        resume (str): A snapshot to start from instead of the latest in out.
        progress (bool): Show Chainer's progress bar (on a terminal).
        explicit_config (bool): The settings were named in a config file,
            so a snapshot without a record of its own may be continued.
        ranks: This process's role (:mod:`vae.parallel`): over a job, train
            on this rank's share of the data, as one of ``config.ranks``.

    Returns:
        VAE: the trained model, on ``device``; ``None`` where the run in
        ``out`` (or the ``resume`` snapshot) had already reached
        ``config.epoch``: then a line says so and nothing is changed.

    Raises:
        TrainingInterrupted: Ctrl-C (or a SIGTERM turned into
            ``KeyboardInterrupt``) stopped training.
    """
    check_memory(config, n_in)
    train_data = ranks.share(train_data, seed=config.seed)
    test_data = ranks.share(test_data)
    if config.batchsize > len(train_data):
        each = ranks.of_each
        raise parallel.every_rank(config_lib.ConfigError(
            'batchsize %d is larger than the %d training images%s; an epoch '
            'is one pass over them, so use at most %d'
            % (config.batchsize, len(train_data), each, len(train_data))))
    device_lib.seed(device, config.seed)  # the same weights on every rank
    model = build_model(config, n_in)
    with contextlib.ExitStack() as held:
        snapshot, finished = ranks.root_first(
            functools.partial(_prepare, held, config, out, model, resume,
                              explicit_config))
        if finished:
            if ranks.is_root:
                print(finished)
            return None
        ranks.own_stream(device, config.seed)  # each rank its own
        model.to_device(device)
        trainer = _trainer(config, out, model, train_data, test_data, device,
                           progress, ranks)
        snapshot = ranks.file_from_root(snapshot)  # the others' copy
        if snapshot is not None:
            resume_lib.load_snapshot(snapshot, trainer)
        ranks.start_optimizer(trainer.updater.get_optimizer('main'), model)
        if ranks.is_root:
            record_environment(out, device, trainer.updater.epoch)
            note_generic_blas(device)
        try:
            with device_lib.current(device):  # the Evaluator's noise too
                trainer.run(show_loop_exception_msg=False)
        except KeyboardInterrupt as e:
            raise TrainingInterrupted(
                'training stopped by %s at epoch %.2f (iteration %d); %s. '
                'Run the same command to resume'
                % (e.args[0] if e.args else 'Ctrl-C',
                   trainer.updater.epoch_detail, trainer.updater.iteration,
                   _kept(out))) from None
        except NonFiniteLossError as e:
            raise parallel.every_rank(NonFiniteLossError(
                '%s; %s. Try a smaller --alpha or another --seed.'
                % (e, _kept(out))))
        if ranks.is_root:
            model_files.save_model(
                os.path.join(out, run_folder.MODEL_FILE), model)
    return model


def check_memory(config, n_in=784):
    """Refuse, before anything is written, a run whose model or steps need
    more memory than the machine has (:mod:`vae.memory`).

    Raises:
        vae.memory.MemoryEstimateError: marked as every rank's.
    """
    try:
        memory.check(
            memory.training_bytes(n_in, config.n_latent, config.n_h,
                                  config.batchsize,
                                  max(config.k, config.k_test)),
            'training a %d-%d-%d VAE on batches of %d images with k=%d '
            '(k_test=%d)' % (n_in, config.n_h, config.n_latent,
                             config.batchsize, config.k,
                             config.k_test),
            'use a smaller --n-hidden, --dim-z, --batchsize, --k or --k-test')
    except memory.MemoryEstimateError as e:
        raise parallel.every_rank(e)


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped training; the message says where."""


def _kept(out):
    """What a stopped run leaves in ``out``, in words."""
    kept = run_folder.existing_outputs(out)
    return ('what it had written is intact: %s' % ', '.join(kept) if kept
            else 'nothing had been saved yet')


def _prepare(held, config, out, model, resume, explicit_config):
    """What one process does before training, with the run folder: hold
    it (in the ``ExitStack`` ``held``), clear an interrupted run's leftovers,
    check what is there against the request, write ``config.json``.

    Returns:
        tuple: the snapshot to resume from (or ``None``), and where the
        run has already reached ``config.epoch``, the line that says so
        (then nothing was changed), else ``None``.
    """
    held.enter_context(run_folder.made_for_run(out))
    held.enter_context(run_folder.lock(out))
    resume_lib.check_previous_run(out, config)
    snapshot = resume or run_folder.latest_snapshot(out)
    if snapshot is not None:
        epoch = resume_lib.check_snapshot(snapshot, model, config,
                                          explicit_config)
        finished = resume_lib.finished_note(
            out if resume is None else 'snapshot %s' % snapshot, epoch,
            config)
        if finished:
            return None, finished
    removed = run_folder.remove_leftovers(out)
    if removed:
        print('removed what an interrupted run left in %s: %s'
              % (out, ', '.join(removed)), file=sys.stderr)
    atomic.write_text(os.path.join(out, run_folder.CONFIG_FILE),
                      config.as_json())
    return snapshot, None


def note_generic_blas(device):
    """On the CPU, say on stderr, in one line, when NumPy's BLAS runs a
    generic kernel on a CPU that has a better one, and what to do
    (:func:`vae.device.blas_note`)."""
    note = device_lib.is_cpu(device) and device_lib.blas_note()
    if note:
        print('note: %s' % note, file=sys.stderr)


def record_environment(out, device, epoch):
    """Add what computes the run from ``epoch`` on to its
    ``environment.json`` (a list: one entry per start or resume)."""
    path = os.path.join(out, run_folder.ENVIRONMENT_FILE)
    try:
        with open(path) as f:
            entries = json.load(f)
        problem = (None if isinstance(entries, list)
                   else 'not a JSON list')
    except FileNotFoundError:
        entries, problem = [], None
    except (OSError, ValueError) as e:
        problem = e
    if problem:
        kept = path + '.unreadable'
        os.replace(path, kept)
        print('note: %s was unreadable (%s); it is kept as %s, and a new '
              'record begins' % (path, problem, os.path.basename(kept)),
              file=sys.stderr)
        entries = []
    entry = dict(device_lib.environment(device), from_epoch=epoch)
    atomic.write_text(path, json.dumps(entries + [entry], indent=2) + '\n')


class EpochLimit:
    """The Trainer's stop trigger: stop once ``epochs`` epochs are done.

    Chainer's ``(N, 'epoch')`` is an interval trigger, which stops at the
    next *multiple* of N: a run resumed at epoch 4 with ``--epoch 3`` would
    go on to epoch 6. This one stops at epoch N exactly.
    """

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, trainer):
        return trainer.updater.epoch_detail >= self.epochs

    def get_training_length(self):
        """What ProgressBar shows the progress against."""
        return self.epochs, 'epoch'


def _trainer(config, out, model, train_data, test_data, device, progress,
             ranks=parallel.ONE_PROCESS):
    """The Trainer of a run, with every extension.

    Over several processes every rank runs the updater, the evaluator and
    the extensions that communicate; those that write or print run on rank
    0 alone. (Chainer's Trainer still makes ``out`` on every rank.)
    """
    path = training_path(model, device, config.alpha, config.fast,
                         config.cuda_graph, ranks)
    path.optimizer.setup(model)
    train_iter = chainer.iterators.SerialIterator(
        train_data, config.batchsize)
    test_iter = chainer.iterators.SerialIterator(
        test_data, config.batchsize, repeat=False, shuffle=False)
    noise_seed = ranks.rank_seed(config.seed)
    updater = path.make_updater(train_iter, path.optimizer, noise_seed,
                                config.C, config.k)
    make_loss_func = path.make_loss_func
    trainer = training.Trainer(updater, EpochLimit(config.epoch),
                               out=out)
    root = ranks.is_root

    eval_func = make_loss_func(C=config.C, k=config.k_test)
    # over a job, each batch is progress (--rank-timeout)
    eval_func = ranks.with_progress(eval_func)
    evaluator = extensions.Evaluator(test_iter, model, device=device,
                                     eval_func=eval_func)
    ranks.extend_evaluator(trainer, evaluator,
                           ('main/loss', 'main/reconstr', 'main/kl'))
    if root:
        trainer.extend(vae_extensions.GraphExport(
            model, test_data[:config.batchsize], config.C,
            config.k))
        log_report = extensions.LogReport(log_name=None)  # LogFile writes it
        trainer.extend(log_report)
        trainer.extend(vae_extensions.LogFile(log_report))
        trainer.extend(vae_extensions.LossPlot(log_report))
        trainer.extend(vae_extensions.SaveModel(model))
    data_rng = getattr(train_data, 'rng', None)
    if not isinstance(data_rng, numpy.random.Generator):
        data_rng = None
    ranks.extend_states(trainer, train_iter, data_rng)
    if root:
        # named as Chainer's snapshot extension was, so older snapshots load
        trainer.extend(vae_extensions.Snapshot(config,
                                               config.snapshot_retain),
                       name='_Snapshot')
        trainer.extend(extensions.PrintReport(
            PRINTED, out=vae_extensions.PlainStream(sys.stdout)))
        if progress and sys.stdout.isatty():  # its terminal codes need one
            trainer.extend(extensions.ProgressBar(update_interval=10))
    return trainer
