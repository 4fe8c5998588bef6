"""Training and evaluation over several processes with ChainerMN (MPI).

``mpiexec -n N python scripts/train.py --communicator naive ...`` runs N
copies of the script, the ranks 0 to N-1 of one MPI job. This module holds
what they do differently from a single process, in small functions; the
rest of the project passes a communicator (``comm``, ``None`` for a single
process) down to them. ChainerMN (shipped inside Chainer 7.8.1) provides the
communicators, the scattering of a data set, the multi-node optimizer and
evaluator; mpi4py and an MPI library (the ``mpi`` extra) carry the messages.

Who does what. Every rank loads the data, builds the same model and trains
on its share of the training set; gradients are averaged over the ranks
before every update, so the weights stay the same everywhere. Rank 0 alone
holds the run folder (its lock, its leftovers, its checks) and writes every
output and prints; the other ranks take its decisions from a broadcast.

Errors. An error that every rank meets together (a setting refused by rank 0's
checks, a non-finite loss, which the ranks compare before each update) ends
every rank with one message from rank 0 (:func:`exit_status`). Any other error
on one rank, or an uncaught exception, aborts the whole MPI job (``MPI_Abort``)
after a message naming that rank, so that the others do not wait for it forever
(:func:`abort`); a rank killed by a signal is noticed by ``mpiexec``, which
then stops the rest. A rank that stops without dying (SIGSTOP, a hung file
system, a deadlock) would leave the others waiting forever: a watchdog thread
on every rank (:mod:`vae.watchdog`) ends the job when its rank has made no
progress for ``--rank-timeout`` seconds (:data:`vae.watchdog.RANK_TIMEOUT` by
default, as the ``timeout`` of PyTorch's process groups).
"""
import sys
import time

import numpy

from vae import watchdog
from vae.launch import (DistributedError, check_single_process,
                        communicator_name)

#: Attribute set on an exception that every rank raised together.
_EVERY_RANK = '_vae_raised_on_every_rank'
#: Seconds a failing rank waits between its message and the abort: mpiexec
#: forwards the ranks' output through pipes, and an abort that comes first
#: can kill the job before the message is through (seen under load).
ABORT_GRACE = 1.0


def create_communicator(name):
    """The ChainerMN communicator ``name`` over all the processes of the MPI
    job (``MPI.COMM_WORLD``), or ``None`` where ``name`` is ``None``.

    An uncaught exception on any rank then aborts the whole job instead of
    leaving the other ranks waiting (as ChainerMN's ``global_except_hook``
    does, with a pause for the message to get out first: :func:`abort`).

    Raises:
        DistributedError: As :func:`vae.launch.communicator_name`.
    """
    if name is None:
        check_single_process()
        return None
    name = communicator_name(name)
    import chainermn
    comm = chainermn.create_communicator(name)

    def abort_on_uncaught(kind, value, traceback):
        sys.__excepthook__(kind, value, traceback)
        abort(comm, 'error: rank %d of %d: uncaught %s; stopping every rank'
              % (comm.rank, comm.size, kind.__name__))
    sys.excepthook = abort_on_uncaught
    return comm


def communicator_or_exit(name):
    """:func:`create_communicator`, or exit with its error in one line."""
    try:
        return create_communicator(name)
    except DistributedError as e:
        sys.exit('error: %s' % e)


def rank(comm):
    """This process's rank (0 without a communicator)."""
    return 0 if comm is None else comm.rank


def size(comm):
    """The number of processes (1 without a communicator)."""
    return 1 if comm is None else comm.size


def is_root(comm):
    """True on the rank that writes, prints and holds the run folder."""
    return rank(comm) == 0


def rank_seed(seed, rank):
    """The seed of rank ``rank``'s own random stream in a run seeded with
    ``seed``: 32 bits, a valid ``numpy.random.seed``."""
    state = numpy.random.SeedSequence([seed, rank]).generate_state(
        1, numpy.uint32)
    return int(state[0])


def every_rank(error):
    """Mark ``error`` as raised by every rank together; returns it."""
    setattr(error, _EVERY_RANK, True)
    return error


def root_first(comm, func):
    """Run ``func()`` on rank 0 and give every rank its outcome.

    Returns:
        ``func()``'s value on every rank (broadcast from rank 0).

    Raises:
        What ``func`` raised on rank 0: there the error itself, elsewhere a
        :class:`DistributedError` with its message; marked by
        :func:`every_rank` on every rank.
    """
    if comm is None:
        return func()
    value = error = None
    if comm.rank == 0:
        try:
            value = func()
        except Exception as e:  # handed to every rank below
            error = e
    outcome = (value, None if error is None else str(error))
    value, message = comm.bcast_obj(outcome if comm.rank == 0 else None)
    watchdog.progress()
    if message is not None:
        raise every_rank(error or DistributedError(message))
    return value


def agree(comm, func):
    """Run ``func()`` on every rank; where any rank failed, fail on all.

    Returns:
        ``func()``'s value on this rank.

    Raises:
        On a rank that failed, its error; on the others, a
        :class:`DistributedError` with the message of the lowest failing
        rank, naming it; marked by :func:`every_rank` on every rank.
    """
    if comm is None:
        return func()
    value = error = None
    try:
        value = func()
    except Exception as e:  # compared with the other ranks' below
        error = e
    messages = comm.mpi_comm.allgather(None if error is None else str(error))
    watchdog.progress()
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if not failed:
        return value
    if error is None:
        error = DistributedError('rank %d: %s' % failed[0])
    raise every_rank(error)


def any_rank(comm, flag):
    """The ranks on which ``flag`` is true (``[0]`` or ``[]`` without a
    communicator); every rank calls it and gets the same list."""
    if comm is None:
        return [0] if flag else []
    flags = comm.mpi_comm.allgather(bool(flag))
    return [r for r, f in enumerate(flags) if f]


def start_optimizer(optimizer, model, comm):
    """Make rank 0's weights everyone's and let the first update update.

    ChainerMN's multi-node optimizer broadcasts rank 0's weights at its
    first ``update`` (when it has not yet seen the model's parameters) and
    skips that update. Broadcasting here instead, after any snapshot was
    loaded, and showing it the parameters makes every update count, so a
    resumed run takes the steps an uninterrupted one would.
    """
    comm.bcast_data(model)
    optimizer.is_changed(model)  # records the parameters it has seen


def exit_status(error, comm):
    """What ``sys.exit`` gets for ``error`` on this rank.

    Without a communicator, ``'error: <message>'``. Where every rank raised
    the error together, rank 0 returns the message and the others 1, so the
    job ends with one message. Otherwise the error is this rank's alone
    while the others may be waiting for it: the message, naming the rank,
    goes to stderr and the whole job is aborted (this never returns).
    """
    if comm is None:
        return 'error: %s' % error
    if getattr(error, _EVERY_RANK, False):
        return 'error: %s' % error if comm.rank == 0 else 1
    abort(comm, 'error: rank %d of %d: %s; stopping every rank'
          % (comm.rank, comm.size, error))


def abort(comm, message):
    """Print ``message`` to stderr and abort the MPI job (all ranks)."""
    sys.stderr.write(message + '\n')
    sys.stderr.flush()
    time.sleep(ABORT_GRACE)
    comm.mpi_comm.Abort(1)


def share(dataset, comm, seed=None, rank_seed=None):
    """This rank's share of ``dataset``, by ``chainermn.scatter_dataset``.

    What is scattered is the list of indices, not the images (every rank
    has loaded the data itself), so nothing large crosses the network. With
    a ``seed``, the indices are first permuted with ``RandomState(seed)``,
    the same permutation on every rank, and each rank takes its own
    contiguous part: the shares are disjoint. The shares have equal lengths
    (``force_equal_length``, which the multi-node updater and evaluator
    assume); where ``len(dataset)`` is not a multiple of the ranks, the last
    share repeats a few images of the one before.

    Args:
        dataset: Images (N, ...), or a
            :class:`vae.data.binarize.DynamicBinarized` of them.
        comm: The communicator.
        seed (int): Shuffle with this seed before splitting; ``None`` keeps
            the order.
        rank_seed (int): Seed of a ``DynamicBinarized`` share's own
            generator, so that the ranks draw different samples.

    Returns:
        The share, of the type of ``dataset``.
    """
    import chainermn
    from vae.data.binarize import DynamicBinarized
    sub = chainermn.scatter_dataset(numpy.arange(len(dataset)), comm,
                                    shuffle=seed is not None, seed=seed)
    indices = numpy.asarray(sub[:len(sub)], dtype=numpy.int64)
    if isinstance(dataset, DynamicBinarized):
        return DynamicBinarized(dataset.images[indices], seed=rank_seed)
    return dataset[indices]


def evaluate(comm, model, x, seed, k, iw_samples, iw_chunk, batchsize,
             progress=True):
    """:func:`vae.eval.estimators.evaluate` of ``x``, its batches split over
    the ranks (arguments as there).

    ``chainermn.scatter_index`` gives each rank consecutive batches (shares of
    at most one batch more than another, without repeats), each rank evaluates
    its own with noise per batch from ``seed``, and rank 0 combines the shares
    in order (:func:`vae.eval.estimators.combine`): the same numbers, to the
    last bit, as one process that evaluates ``x`` with that seed, whatever the
    number of ranks.

    Returns:
        dict: The result on rank 0; ``None`` on the others.
    """
    import chainermn
    from vae.eval import estimators
    n_batches = -(-len(x) // batchsize)
    first, end = chainermn.scatter_index(n_batches, comm,
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
    shares = comm.gather_obj(share)
    if comm.rank != 0:
        return None
    return estimators.combine(shares, k=k, iw_samples=iw_samples,
                              n_latent=model.n_latent)
