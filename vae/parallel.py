"""Training and evaluation over several processes with ChainerMN (MPI).

``mpiexec -n N python scripts/train.py --communicator naive ...`` runs N
copies of the script, the ranks 0 to N-1 of one MPI job. A command decides
once, where it starts, what its process is (:func:`create_ranks`): a
:class:`Ranks`, which holds all that the ranks do differently from a single
process, or :data:`ONE_PROCESS`, the null with the same interface, which
does the trivial thing; training and evaluation take the one they are given
and ask it. ChainerMN (shipped inside Chainer 7.8.1) provides the
communicators, the scattering of a data set, the multi-node optimizer and
evaluator; mpi4py and an MPI library (the ``mpi`` extra) carry the messages.

Who does what. Every rank loads the data, builds the same model and trains
on its share of the training set; gradients are averaged over the ranks
before every update, so the weights stay the same everywhere. Rank 0 alone
holds the run folder (its lock, its leftovers, its checks) and writes every
output and prints; the other ranks take its decisions from a broadcast.

Errors. An error that every rank meets together (a setting refused by rank 0's
checks, a non-finite loss, which the ranks compare before each update) ends
every rank with one message from rank 0 (:meth:`Ranks.exit_status`). Any other
error on one rank, or an uncaught exception, aborts the whole MPI job
(``MPI_Abort``) after a message naming that rank, so that the others do not
wait for it forever (:meth:`Ranks.abort`); a rank killed by a signal is
noticed by ``mpiexec``, which then stops the rest. A rank that stops without
dying (SIGSTOP, a hung file system, a deadlock) would leave the others waiting
forever: a watchdog thread on every rank (:mod:`vae.watchdog`) ends the job
when its rank has made no progress for ``--rank-timeout`` seconds
(:data:`vae.watchdog.RANK_TIMEOUT` by default, as the ``timeout`` of PyTorch's
process groups).
"""
import contextlib
import io
import sys
import time

import numpy

from vae import device as device_lib
from vae import watchdog
from vae.launch import (DistributedError, check_single_process,  # NOQA
                        communicator_name, every_rank, raised_on_every_rank)

#: Seconds a failing rank waits between its message and the abort: mpiexec
#: forwards the ranks' output through pipes, and an abort that comes first
#: can kill the job before the message is through (seen under load).
ABORT_GRACE = 1.0


def create_ranks(name):
    """The role of this process, decided once where a command starts:
    :data:`ONE_PROCESS` where ``name`` is ``None`` (refused under a launcher
    of several processes: :func:`vae.launch.check_single_process`), else the
    :class:`Ranks` of the ChainerMN communicator ``name`` over all the
    processes of the MPI job (``MPI.COMM_WORLD``).

    An uncaught exception on any rank then aborts the whole job instead of
    leaving the other ranks waiting (as ChainerMN's ``global_except_hook``
    does, with a pause for the message to get out first:
    :meth:`Ranks.abort`).

    Raises:
        DistributedError: As :func:`vae.launch.communicator_name`.
    """
    if name is None:
        check_single_process()
        return ONE_PROCESS
    name = communicator_name(name)
    import chainermn
    ranks = Ranks(chainermn.create_communicator(name))

    def abort_on_uncaught(kind, value, traceback):
        sys.__excepthook__(kind, value, traceback)
        ranks.abort('error: rank %d of %d: uncaught %s; stopping every rank'
                    % (ranks.rank, ranks.size, kind.__name__))
    sys.excepthook = abort_on_uncaught
    return ranks


def ranks_or_exit(name):
    """:func:`create_ranks`, or exit with its error in one line."""
    try:
        return create_ranks(name)
    except DistributedError as e:
        sys.exit('error: %s' % e)


def rank_seed(seed, rank):
    """The seed of rank ``rank``'s own random stream in a run seeded with
    ``seed``: 32 bits, a valid ``numpy.random.seed``."""
    return device_lib.derive_seed(seed, rank, bits=32)


class OneProcess:
    """The role of a process that runs alone (no ``--communicator``): the
    null :class:`Ranks`, each part of its interface doing the trivial thing
    (rank 0 of 1, the root; what ranks would share, agree on or exchange is
    this process's alone; nothing watches it)."""

    rank = intra_rank = 0
    size = 1
    is_root = True
    #: How an evaluation draws its noise (``noise`` in its results).
    noise = 'one stream'
    #: Why the CUDA-graph path cannot run, whatever the device: nothing.
    cuda_graph_obstacle = None
    #: Said of the training images after their number: nothing.
    of_each = ''

    def root_first(self, func):
        return func()

    def file_from_root(self, path):
        return path

    def agree(self, func):
        return func()

    def any_rank(self, flag):
        return [0] if flag else []

    def where(self, ranks, value):
        """Where ``value`` was seen, in words: the value itself."""
        return '(%r)' % value

    def rank_seed(self, seed):
        return seed

    def own_stream(self, device, seed):
        """Nothing: the one process draws on from the run's stream."""

    def share(self, dataset, seed=None):
        return dataset

    def optimizer(self, optimizer):
        return optimizer

    def start_optimizer(self, optimizer, model):
        """Nothing: the weights are this process's alone."""

    def with_progress(self, func):
        return func

    def extend_evaluator(self, trainer, evaluator, keys):
        trainer.extend(evaluator)

    def extend_states(self, trainer, iterator, rng=None):
        """NumPy's random state and the data's generator in the snapshots."""
        from vae.train import extensions
        trainer.extend(extensions.NumpyRandomState())
        if rng is not None:
            # DynamicBinarized draws its samples from a generator of its own
            trainer.extend(extensions.GeneratorState(rng),
                           name='DataRandomState')

    def evaluate(self, model, x, device, seed, **options):
        """:func:`vae.eval.estimators.evaluate` of ``x``, its noise one
        stream from ``seed``."""
        from vae import device as device_lib
        from vae.eval import estimators
        device_lib.seed(device, seed)  # the generators z is drawn from
        return estimators.evaluate(model, x, **options)

    def barrier(self):
        pass

    def watched(self, timeout):
        return contextlib.nullcontext()

    def exit_status(self, error):
        return 'error: %s' % error

    def abort(self, message):
        sys.exit(message)


#: The role of every process that runs alone.
ONE_PROCESS = OneProcess()


class Ranks:
    """The role of this process as one rank of a ChainerMN job: who it is
    and what the ranks do together (the module's docstring says who does
    what), with the communicator ``comm``. :class:`OneProcess` has the same
    interface."""

    noise = 'per batch'
    cuda_graph_obstacle = 'the CUDA graph cannot include the communicator'

    def __init__(self, comm):
        self.comm = comm

    rank = property(lambda self: self.comm.rank)
    size = property(lambda self: self.comm.size)
    #: This rank's place among the ranks of its machine (its GPU).
    intra_rank = property(lambda self: self.comm.intra_rank)
    #: The rank that writes, prints and holds the run folder: rank 0.
    is_root = property(lambda self: self.comm.rank == 0)
    of_each = property(lambda self: ' of each of the %d ranks' % self.size)

    def root_first(self, func):
        """Run ``func()`` on rank 0 and give every rank its outcome: its
        value (broadcast from rank 0), or

        Raises:
            What ``func`` raised on rank 0: there the error itself, elsewhere
            a :class:`DistributedError` with its message; marked by
            :func:`every_rank` on every rank.
        """
        value = error = None
        if self.is_root:
            try:
                value = func()
            except Exception as e:  # handed to every rank below
                error = e
        outcome = (value, None if error is None else str(error))
        value, message = self.comm.bcast_obj(outcome if self.is_root
                                             else None)
        watchdog.progress()
        if message is not None:
            raise every_rank(error or DistributedError(message))
        return value

    def file_from_root(self, path):
        """Rank 0's file ``path`` (or None) on every rank, as rank 0 read it
        (the other ranks' machines may not see its folder)."""
        def read():
            if path is not None:
                with open(path, 'rb') as f:
                    return io.BytesIO(f.read())
        return self.root_first(read)

    def agree(self, func):
        """Run ``func()`` on every rank; where any rank failed, fail on all.
        Returns ``func()``'s value on this rank, or

        Raises:
            On a rank that failed, its error; on the others, a
            :class:`DistributedError` with the message of the lowest failing
            rank, naming it; marked by :func:`every_rank` on every rank.
        """
        value = error = None
        try:
            value = func()
        except Exception as e:  # compared with the other ranks' below
            error = e
        messages = self.comm.mpi_comm.allgather(
            None if error is None else str(error))
        watchdog.progress()
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if not failed:
            return value
        if error is None:
            error = DistributedError('rank %d: %s' % failed[0])
        raise every_rank(error)

    def any_rank(self, flag):
        """The ranks on which ``flag`` is true; every rank calls it and gets
        the same list."""
        flags = self.comm.mpi_comm.allgather(bool(flag))
        return [r for r, f in enumerate(flags) if f]

    def where(self, ranks, value):
        """Where a value was seen, in words: on the ``ranks``."""
        return 'on rank %s' % ', '.join(map(str, ranks))

    def rank_seed(self, seed):
        """This rank's seed in a run seeded with ``seed``
        (:func:`rank_seed`)."""
        return rank_seed(seed, self.rank)

    def own_stream(self, device, seed):
        """From here on, each rank its own stream (:meth:`rank_seed`)."""
        from vae import device as device_lib
        device_lib.seed(device, self.rank_seed(seed))

    def share(self, dataset, seed=None):
        """This rank's share of ``dataset`` (images (N, ...) or a
        :class:`vae.data.binarize.DynamicBinarized` of them), of its type.

        ``chainermn.scatter_dataset`` scatters the indices, not the images
        (every rank has loaded them), so nothing large crosses the network.
        With a ``seed``, the indices are first permuted with
        ``RandomState(seed)``, the same permutation on every rank, and each
        rank takes its own contiguous part: the shares are disjoint, and a
        ``DynamicBinarized`` share draws from a generator of its own (seeded
        with :meth:`rank_seed`); ``None`` keeps the order. The shares have
        equal lengths (``force_equal_length``, which the multi-node updater
        and evaluator assume): where ``len(dataset)`` is not a multiple of
        the ranks, the last share repeats a few images of the one before.
        """
        import chainermn
        from vae.data.binarize import DynamicBinarized
        sub = chainermn.scatter_dataset(numpy.arange(len(dataset)), self.comm,
                                        shuffle=seed is not None, seed=seed)
        indices = numpy.asarray(sub[:len(sub)], dtype=numpy.int64)
        if isinstance(dataset, DynamicBinarized):
            return DynamicBinarized(
                dataset.images[indices],
                seed=None if seed is None else self.rank_seed(seed))
        return dataset[indices]

    def optimizer(self, optimizer):
        """ChainerMN's multi-node optimizer around ``optimizer``: it averages
        every gradient over the ranks (in place) before the update."""
        import chainermn
        return chainermn.create_multi_node_optimizer(optimizer, self.comm)

    def start_optimizer(self, optimizer, model):
        """Make rank 0's weights everyone's and let the first update update.

        ChainerMN's multi-node optimizer broadcasts rank 0's weights at its
        first ``update`` (not having seen the model's parameters) and skips
        that update. Broadcasting here instead, after any snapshot was loaded,
        and showing it the parameters makes every update count, so a resumed
        run takes the steps an uninterrupted one would."""
        self.comm.bcast_data(model)
        optimizer.is_changed(model)  # records the parameters it has seen

    def with_progress(self, func):
        """``func`` that says each call is progress (``--rank-timeout``)."""
        return watchdog.with_progress(func)

    def extend_evaluator(self, trainer, evaluator, keys):
        """ChainerMN's multi-node evaluator around ``evaluator``, and the
        observations ``keys`` averaged over the ranks."""
        import chainermn
        from vae.train import extensions
        trainer.extend(chainermn.create_multi_node_evaluator(evaluator,
                                                             self.comm))
        trainer.extend(extensions.MeanOverRanks(self.comm, keys))

    def extend_states(self, trainer, iterator, rng=None):
        """Every rank's random states and ``iterator`` in the snapshots."""
        from vae.train import extensions
        trainer.extend(extensions.RankStates(self.comm, iterator, rng),
                       name='RankStates')

    def evaluate(self, model, x, device, seed, k, iw_samples, iw_chunk,
                 batchsize, progress=True):
        """:func:`vae.eval.estimators.evaluate` of ``x``, its batches split
        over the ranks (arguments as there): the result on rank 0, ``None``
        on the others.

        ``chainermn.scatter_index`` gives each rank consecutive batches
        (shares of at most one batch more than another, without repeats),
        each rank evaluates its own with noise per batch from ``seed``, and
        rank 0 combines the shares in order
        (:func:`vae.eval.estimators.combine`): the same numbers, to the last
        bit, as one process that evaluates ``x`` with that seed, whatever the
        number of ranks."""
        import chainermn
        from vae.eval import estimators
        n_batches = -(-len(x) // batchsize)
        first, end = chainermn.scatter_index(n_batches, self.comm,
                                             force_equal_length=False)
        part = x[first * batchsize:end * batchsize]
        if len(part):
            share = estimators.evaluate_share(
                model, part, k=k, iw_samples=iw_samples, iw_chunk=iw_chunk,
                batchsize=batchsize, progress=progress, seed=seed,
                first_batch=first)
        else:  # more ranks than batches
            share = {'elbo_sums': [], 'log_px': numpy.empty(0),
                     'mu': numpy.empty((0, model.n_latent), numpy.float32),
                     'seconds': {}}
        shares = self.comm.gather_obj(share)
        if not self.is_root:
            return None
        return estimators.combine(shares, k=k, iw_samples=iw_samples,
                                  n_latent=model.n_latent)

    def barrier(self):
        self.comm.mpi_comm.Barrier()

    def watched(self, timeout):
        """A :class:`vae.watchdog.Watchdog` on this rank, within."""
        return watchdog.watched(self, timeout)

    def exit_status(self, error):
        """What ``sys.exit`` gets for ``error`` on this rank.

        Where every rank raised the error together, rank 0 returns
        ``'error: <message>'`` and the others 1: the job ends with one
        message. Otherwise the error is this rank's alone while the others
        may be waiting for it: the message, naming the rank, goes to stderr
        and the whole job is aborted (this never returns)."""
        if raised_on_every_rank(error):
            return 'error: %s' % error if self.is_root else 1
        self.abort('error: rank %d of %d: %s; stopping every rank'
                   % (self.rank, self.size, error))

    def abort(self, message):
        """Print ``message`` to stderr and abort the MPI job (all ranks)."""
        sys.stderr.write(message + '\n')
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)
        self.comm.mpi_comm.Abort(1)
