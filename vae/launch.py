"""How a command was started, checked before any rank exists: the
``--communicator`` names, and the refusals of a start that cannot work, such
as several processes started by an MPI launcher without ``--communicator``
(:mod:`vae.parallel` runs the ranks of a job that can); and the errors of a
job.
"""
import os
import sys

#: ``--communicator`` names: ChainerMN's communicators this project offers.
#: ``naive`` averages each gradient array with one MPI call, from CPU or
#: GPU memory; ``flat`` packs them into one buffer in GPU memory first, and
#: ``pure_nccl`` averages them between GPUs with NCCL.
COMMUNICATORS = ('naive', 'flat', 'pure_nccl')
#: Those that exchange gradients in GPU memory (through CuPy).
GPU_COMMUNICATORS = ('flat', 'pure_nccl')

#: Environment variables in which MPI launchers give the number of
#: processes they started: Open MPI's, MPICH's and Intel MPI's (Hydra's
#: PMI), MVAPICH2's.
LAUNCHER_SIZE_VARIABLES = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE',
                           'MV2_COMM_WORLD_SIZE')


class DistributedError(RuntimeError):
    """The run over several processes cannot start as asked."""


#: Attribute set on an exception that every rank raised together.
_EVERY_RANK = '_vae_raised_on_every_rank'


def every_rank(error):
    """Mark ``error`` as raised by every rank together; returns it."""
    setattr(error, _EVERY_RANK, True)
    return error


def raised_on_every_rank(error):
    """Whether :func:`every_rank` marked ``error``."""
    return getattr(error, _EVERY_RANK, False)


def communicator_name(name):
    """The ChainerMN communicator to create for ``--communicator name``, with
    MPI initialized for it.

    Raises:
        DistributedError: ``name`` is unknown, or mpi4py or the MPI library
            is missing (with the fix in the message).
    """
    if name not in COMMUNICATORS:
        raise DistributedError('unknown communicator %r; known: %s'
                               % (name, ', '.join(COMMUNICATORS)))
    try:
        import mpi4py.MPI  # NOQA: F401  (initializes MPI)
    except (ImportError, RuntimeError) as e:  # no mpi4py, or no libmpi
        raise DistributedError(
            '--communicator needs mpi4py and an MPI library (%s); install '
            'them with pip install -e ".[mpi]"' % e)
    if name in GPU_COMMUNICATORS and not _has_cupy():
        # flat and pure_nccl cannot even be built without CuPy; a naive one
        # carries check_device's refusal to every rank as one message
        return 'naive'
    return name


def launched_processes(environ=None):
    """``(N, variable)``: the number of processes an MPI launcher started
    together with this one, as the launcher's variable says (``(1, None)``
    outside a launcher)."""
    environ = os.environ if environ is None else environ
    for variable in LAUNCHER_SIZE_VARIABLES:
        try:
            n = int(environ.get(variable, ''))
        except ValueError:
            continue
        if n > 1:
            return n, variable
    return 1, None


def check_single_process(environ=None, shares=True):
    """Refuse to run as one of several processes that an MPI launcher
    started without ``--communicator``: each would do the whole work alone
    and write the same outputs. ``shares``: the command has the flag (else
    it runs as one process only).

    Raises:
        DistributedError: naming the launcher's variable and the flag.
    """
    n, variable = launched_processes(environ)
    if n <= 1:
        return
    if shares:
        why = 'but --communicator is not given'
        fix = ('add --communicator naive (flat or pure_nccl between GPUs), '
               'or run one process without mpiexec')
    else:
        why = 'but this command runs as one process'
        fix = 'run it without mpiexec'
    raise DistributedError(
        'this is one of %d processes started by an MPI launcher (%s=%d) %s, '
        'so each would do the whole work alone and write the same files; %s'
        % (n, variable, n, why, fix))


def single_process_or_exit():
    """For the commands that run as one process: exit with one line where
    an MPI launcher started several of them."""
    try:
        check_single_process(shares=False)
    except DistributedError as e:
        sys.exit('error: %s' % e)


def _has_cupy():
    try:
        import cupy  # NOQA: F401
    except ImportError:
        return False
    return True


def check_device(name, device):
    """Refuse a GPU-only communicator on the CPU.

    Raises:
        DistributedError
    """
    from vae import device as device_lib
    if name in GPU_COMMUNICATORS and device_lib.is_cpu(device):
        raise DistributedError(
            '--communicator %s works between GPUs only (it exchanges the '
            'gradients in GPU memory, through CuPy): give --gpu, or on the '
            'CPU use --communicator naive' % name)
