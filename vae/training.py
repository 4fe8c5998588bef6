"""Training with Chainer's Trainer, as Chainer's own VAE example does.

The loop is the article's (Adam, shuffled minibatches, the negative ELBO
with k samples) run by ``chainer.training.Trainer``. What this module adds
is what a long run needs: a run folder that one run holds at a time, a
snapshot every epoch that also holds the random state (so that a resumed run
equals an uninterrupted one), a guard that stops on a non-finite loss
before any weight changes, atomic outputs, and checks that a resumed run has
the settings of the run it continues (:mod:`vae.resume`).

Given a ChainerMN communicator (``comm``), the same loop runs on every rank
of an MPI job on its share of the data (:mod:`vae.distributed` says who
does what); without one, nothing here differs from a single process.
"""
import contextlib
import functools
import io
import json
import math
import os
import sys

import chainer
import numpy
from chainer import training
from chainer.training import extensions

from vae import atomic, config as config_lib
from vae import device as device_lib
from vae import distributed
from vae import extensions as vae_extensions
from vae import fast as fast_lib
from vae import resume as resume_lib
from vae import run_folder, serialization
from vae.net import VAE

#: The entries PrintReport shows, one line per epoch.
PRINTED = ['epoch', 'main/loss', 'validation/main/loss', 'main/reconstr',
           'validation/main/reconstr', 'main/kl', 'validation/main/kl',
           'elapsed_time']


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; no weight was updated with it."""


class Updater(training.updaters.StandardUpdater):
    """``StandardUpdater`` with two additions; its ``update_core`` is
    Chainer's own.

    * The loss is checked after the forward pass and before backward and
      the optimizer step: a non-finite one raises
      :class:`NonFiniteLossError`, so the weights, the snapshots and
      ``model.npz`` keep their last good values.
    * On a GPU, the noise generator is reseeded before each iteration
      (:func:`vae.device.reseed_noise`), which makes a resumed GPU run
      draw what an uninterrupted one would.

    Over several processes the ranks compare their losses before anyone
    updates, so that all stop together where one loss is not finite.

    Args:
        iterator, optimizer, loss_func, device: As ``StandardUpdater``'s.
        seed (int): The seed of this process's noise.
        comm: The ChainerMN communicator, or ``None``.
    """

    def __init__(self, iterator, optimizer, loss_func, device, seed,
                 comm=None):
        super(Updater, self).__init__(
            iterator, optimizer, device=device,
            loss_func=self._guarded(loss_func))
        self._seed = seed
        self._comm = comm

    def update_core(self):
        device_lib.reseed_noise(self.device, self._seed, self.iteration)
        super(Updater, self).update_core()

    def _guarded(self, loss_func):
        @functools.wraps(loss_func)
        def guarded(*args):
            loss = loss_func(*args)
            value = float(loss.array)
            bad = distributed.any_rank(self._comm, not math.isfinite(value))
            if bad:
                iterator = self.get_iterator('main')
                # the batch that ends an epoch belongs to it
                epoch = iterator.epoch + (0 if iterator.is_new_epoch else 1)
                where = ('(%r)' % value if self._comm is None else
                         'on rank %s' % ', '.join(map(str, bad)))
                raise NonFiniteLossError(
                    'non-finite loss %s at iteration %d (epoch %d); '
                    'training stopped before this update'
                    % (where, self.iteration + 1, epoch))
            return loss
        return guarded


def build_model(config, n_in=784):
    """The VAE that ``config`` describes."""
    return VAE(n_in, config['n_latent'], config['n_h'], config['activation'])


def loss_and_optimizer(model, device, alpha, fast=True, comm=None):
    """The training path for ``model`` on ``device``, over the processes of
    ``comm``: the one place where the path meets the communicator.

    The fast path (:mod:`vae.fast`: the fused loss and the flat Adam, the
    same numbers bit for bit) where asked for and supported; else the plain
    path, ``model.get_loss_func`` and ``chainer.optimizers.Adam``, with a
    note on stderr when the fast one was asked for.

    With a communicator, the optimizer is wrapped in ChainerMN's multi-node
    optimizer, which averages every gradient over the ranks before the
    update. Both paths compose with it: the communicator averages the
    gradient arrays in place, and the fast path's gradients stay views of
    its flat buffer. A path that cannot include the communicator (a fused
    GPU step, for one) is to be refused here, falling back to the plain
    path with a note, as an unsupported fast path is.

    Returns:
        tuple: ``(make_loss_func, optimizer, path)``: a callable
        ``make_loss_func(C=..., k=...)`` that returns a loss function, the
        optimizer (not yet set up), and ``'fast'`` or ``'plain'``.
    """
    why_not = fast and fast_lib.unsupported_reason(model, device)
    if why_not and distributed.is_root(comm):
        print('note: %s; training on the plain path' % why_not,
              file=sys.stderr)
    if fast and not why_not:
        chosen = (functools.partial(fast_lib.loss_func, model),
                  fast_lib.FlatAdam(alpha=alpha), 'fast')
    else:
        chosen = (model.get_loss_func, chainer.optimizers.Adam(alpha=alpha),
                  'plain')
    if comm is None:
        return chosen
    import chainermn
    make_loss_func, optimizer, path = chosen
    return (make_loss_func,
            chainermn.create_multi_node_optimizer(optimizer, comm), path)


def train(config, out, train_data, test_data, device, resume=None,
          progress=True, n_in=784, explicit_config=False, comm=None):
    """Train a VAE as ``config`` says, writing everything under ``out``.

    Args:
        config (dict): A resolved configuration (:func:`vae.config.resolve`).
        out (str): Output folder; an earlier run there is continued from its
            latest snapshot.
        train_data, test_data: Datasets of images, (N, n_in) float32.
        device (chainer.backend.Device): Where to train.
        resume (str): A snapshot to start from instead of the latest in out.
        progress (bool): Show Chainer's progress bar (on a terminal).
        explicit_config (bool): The settings were named in a config file,
            so a snapshot without a record of its own may be continued.
        comm: A ChainerMN communicator: train on this rank's share of the
            data, as one of ``config['ranks']`` processes; ``None``: alone.

    Returns:
        VAE: the trained model, on ``device``.
    """
    if comm is not None:
        train_data = distributed.share(
            train_data, comm, seed=config['seed'],
            rank_seed=distributed.rank_seed(config['seed'], comm.rank))
        test_data = distributed.share(test_data, comm)
    if config['batchsize'] > len(train_data):
        each = ('' if comm is None else ' of each of the %d ranks'
                % comm.size)
        raise distributed.every_rank(config_lib.ConfigError(
            'batchsize %d is larger than the %d training images%s; an epoch '
            'is one pass over them, so use at most %d'
            % (config['batchsize'], len(train_data), each, len(train_data))))
    device_lib.seed(device, config['seed'])  # the same weights on every rank
    model = build_model(config, n_in)
    with contextlib.ExitStack() as held:
        snapshot, data = distributed.root_first(comm, functools.partial(
            _prepare, held, config, out, model, resume, explicit_config,
            comm is not None))
        if comm is not None:  # from here on, each rank its own stream
            device_lib.seed(device,
                            distributed.rank_seed(config['seed'], comm.rank))
        model.to_device(device)
        trainer = _trainer(config, out, model, train_data, test_data, device,
                           progress, comm)
        if snapshot is not None:
            resume_lib.load_snapshot(snapshot if data is None else
                                     io.BytesIO(data), trainer)
        if comm is not None:
            distributed.start_optimizer(
                trainer.updater.get_optimizer('main'), model, comm)
        try:
            trainer.run(show_loop_exception_msg=False)
        except NonFiniteLossError as e:
            kept = run_folder.existing_outputs(out)
            raise distributed.every_rank(NonFiniteLossError(
                '%s; %s. Try a smaller --alpha or another --seed.'
                % (e, 'what it had written is intact: %s' % ', '.join(kept)
                   if kept else 'nothing had been saved yet')))
        if distributed.is_root(comm):
            serialization.save_model(
                os.path.join(out, run_folder.MODEL_FILE), model)
    return model


def _prepare(held, config, out, model, resume, explicit_config, broadcast):
    """What one process does before training, with the run folder: hold
    it (in the ``ExitStack`` ``held``), clear an interrupted run's leftovers,
    check what is there against the request, write ``config.json``.

    Returns:
        tuple: the snapshot to resume from (or ``None``) and, where
        ``broadcast``, its bytes for the other ranks.
    """
    os.makedirs(out, exist_ok=True)
    held.enter_context(run_folder.lock(out))
    removed = run_folder.remove_leftovers(out)
    if removed:
        print('removed what an interrupted run left in %s: %s'
              % (out, ', '.join(removed)), file=sys.stderr)
    resume_lib.check_previous_run(out, config)
    snapshot = resume or run_folder.latest_snapshot(out)
    if snapshot is not None:
        resume_lib.check_snapshot(snapshot, model, config, explicit_config)
    atomic.write_text(os.path.join(out, run_folder.CONFIG_FILE),
                      json.dumps(config, indent=2, sort_keys=True) + '\n')
    if snapshot is None or not broadcast:
        return snapshot, None
    with open(snapshot, 'rb') as f:
        return snapshot, f.read()


def _trainer(config, out, model, train_data, test_data, device, progress,
             comm=None):
    """The Trainer of a run, with every extension.

    Over several processes every rank runs the updater, the evaluator and
    the extensions that communicate; those that write or print run on rank
    0 alone. (Chainer's Trainer still makes ``out`` on every rank.)
    """
    make_loss_func, optimizer, _ = loss_and_optimizer(
        model, device, config['alpha'], config['fast'], comm)
    optimizer.setup(model)
    train_iter = chainer.iterators.SerialIterator(
        train_data, config['batchsize'])
    test_iter = chainer.iterators.SerialIterator(
        test_data, config['batchsize'], repeat=False, shuffle=False)
    noise_seed = (config['seed'] if comm is None else
                  distributed.rank_seed(config['seed'], comm.rank))
    updater = Updater(train_iter, optimizer,
                      make_loss_func(C=config['C'], k=config['k']), device,
                      noise_seed, comm)
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'), out=out)
    root = distributed.is_root(comm)

    evaluator = extensions.Evaluator(
        test_iter, model, device=device,
        eval_func=make_loss_func(C=config['C'], k=config['k_test']))
    if comm is None:
        trainer.extend(evaluator)
    else:
        import chainermn
        trainer.extend(chainermn.create_multi_node_evaluator(evaluator, comm))
        trainer.extend(vae_extensions.MeanOverRanks(
            comm, ('main/loss', 'main/reconstr', 'main/kl')))
    if root:
        trainer.extend(vae_extensions.GraphExport(
            model, test_data[:config['batchsize']], config['C'],
            config['k']))
        log_report = extensions.LogReport(log_name=None)  # LogFile writes it
        trainer.extend(log_report)
        trainer.extend(vae_extensions.LogFile(log_report))
        trainer.extend(vae_extensions.LossPlot(log_report))
        trainer.extend(vae_extensions.SaveModel(model))
    data_rng = getattr(train_data, 'rng', None)
    if not isinstance(data_rng, numpy.random.Generator):
        data_rng = None
    if comm is not None:
        trainer.extend(vae_extensions.RankStates(comm, train_iter, data_rng),
                       name='RankStates')
    else:
        trainer.extend(vae_extensions.NumpyRandomState())
        if data_rng is not None:
            # DynamicBinarized draws its samples from a generator of its own
            trainer.extend(vae_extensions.GeneratorState(data_rng),
                           name='DataRandomState')
    if root:
        # named as Chainer's snapshot extension was, so older snapshots load
        trainer.extend(vae_extensions.Snapshot(config,
                                               config['snapshot_retain']),
                       name='_Snapshot')
        trainer.extend(extensions.PrintReport(
            PRINTED, out=vae_extensions.PlainStream(sys.stdout)))
        if progress and sys.stdout.isatty():  # its terminal codes need one
            trainer.extend(extensions.ProgressBar(update_interval=10))
    return trainer
