"""Command-line arguments that several scripts share, defined once."""
import argparse
import contextlib
import os
import signal
import sys
import threading


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be >= 1, got %d' % value)
    return value


def non_negative_int(text):
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be >= 0, got %d' % value)
    return value


def seed(text):
    """An argparse type: a random seed, in [0, 2**32) as training's."""
    from vae.config import SEED_LIMIT
    value = int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError('must be in [0, 2**32), got %d'
                                         % value)
    return value


def path(text):
    """An argparse type: a path, which an empty string is not (it would
    stand for the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError('must name a file or folder, not '
                                         'an empty string')
    return text


def add_device_arguments(parser):
    """``--gpu/-g`` (the article's flag) and ``--device/-d``."""
    parser.add_argument('--gpu', '-g', type=int,
                        help='GPU id (CuPy), or -1 for the CPU (default -1); '
                        'under --communicator, each process takes GPU id + '
                        'its rank on its machine')
    parser.add_argument('--device', '-d',
                        help='any Chainer device specifier (@numpy, '
                        '@cupy:0, ...); wins over --gpu')


def add_data_dir_argument(parser):
    """``--data-dir``: a local copy of MNIST (see vae.data.load_mnist)."""
    parser.add_argument('--data-dir',
                        help='folder with the four MNIST IDX files (gzipped '
                        'or not); default: cache, then download')


def add_model_arguments(parser):
    """``--model/-m`` (required) and ``--activation`` for a model file."""
    from vae.model import ACTIVATIONS
    parser.add_argument('--model', '-m', required=True,
                        help='model file: model.npz of scripts/train.py, '
                        "or the article's VAE saved with save_npz")
    parser.add_argument('--activation', choices=sorted(ACTIVATIONS),
                        help="hidden activation of an article's save_npz "
                        'file, which records none (default softplus, as its '
                        'published models); a model.npz records its own')


def add_out_folder_argument(parser, note=''):
    """``--out/-o``: a required output folder (see :func:`out_folder`)."""
    parser.add_argument('--out', '-o', required=True, type=path,
                        help='output folder (made if missing)' + note)


def check_out_folder(path):
    """The absolute path of an ``--out`` folder, checked before anything is
    read or written.

    The one rule of every command's ``--out`` folder: a missing folder is
    made, parents included, when the first file is written into it; a file
    in the way, or a folder that cannot be written, is refused before the
    work (:func:`vae.atomic.writable_folder`).

    Raises:
        vae.atomic.WriteError: naming the folder and why.
    """
    from vae import atomic
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise atomic.WriteError(20, '--out is a file, not a folder: %s'
                                % path)
    return atomic.writable_folder(path)


def out_folder(path):
    """:func:`check_out_folder`, or exit with its one-line error."""
    from vae import atomic
    try:
        return check_out_folder(path)
    except atomic.WriteError as e:
        sys.exit('error: %s' % e)


def seconds(text):
    """An argparse type: a finite number of seconds, at least 0."""
    value = float(text)
    if not 0 <= value < float('inf'):
        raise argparse.ArgumentTypeError('must be a number of seconds >= 0, '
                                         'got %s' % text)
    return value


def add_progress_argument(parser, what='the progress bar'):
    """``--no-progress``: hide ``what`` (drawn only on a terminal)."""
    parser.add_argument('--no-progress', dest='progress',
                        action='store_false', help='hide ' + what)


def add_communicator_argument(parser):
    """``--communicator``: run as one of the processes of an MPI job; and
    ``--rank-timeout``, how long a rank may go without progress there."""
    from vae.launch import COMMUNICATORS
    from vae.watchdog import RANK_TIMEOUT
    parser.add_argument('--communicator', choices=COMMUNICATORS,
                        help='run as one rank of `mpiexec -n N ...` with '
                        "this ChainerMN communicator (naive on CPUs; flat or "
                        'pure_nccl between GPUs); needs the mpi extra (see '
                        'docs/processes.md). Default: one process')
    parser.add_argument('--rank-timeout', type=seconds, default=RANK_TIMEOUT,
                        metavar='SECONDS',
                        help='under --communicator, end the whole job when a '
                        'rank has made no progress for this long (a stopped '
                        'or hung rank would leave the others waiting '
                        'forever); 0: no limit (default %(default)g)')


def _sigterm_interrupts(signum, frame):
    raise KeyboardInterrupt('SIGTERM')


def stop_on_sigterm():
    """Make SIGTERM stop the script as Ctrl-C does: a ``KeyboardInterrupt``
    (whose argument names the signal), so that the same one line is said
    and the same clean-up runs. Returns the handler it replaced."""
    return signal.signal(signal.SIGTERM, _sigterm_interrupts)


@contextlib.contextmanager
def stopped_in_one_line(what):
    """Run a script's work so that Ctrl-C or SIGTERM ends it with one line,
    ``error: stopped by <signal>; <what>``, and exit status 1, instead of a
    traceback. What a write had begun is removed on the way out
    (:func:`vae.atomic.atomic_path`), so ``what`` can say that every file
    written is whole. SIGTERM's previous handler is restored afterwards."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = stop_on_sigterm()
    try:
        yield
    except KeyboardInterrupt as e:
        sys.exit(interrupted(e, what))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def interrupted(error, what):
    """The one line for a ``KeyboardInterrupt`` ``error``: which signal
    stopped the script, then ``what`` (where that leaves things)."""
    return 'error: %s' % interruption(error, what)


def interruption(error, what):
    """:func:`interrupted` without its ``error:``."""
    return 'stopped by %s; %s' % (
        error.args[0] if error.args else 'Ctrl-C', what)


def one_process_main(build_parser, run, stopped):
    """The ``main(argv=None)`` of a command that runs as one process: parse
    the flags, refuse a launch of several processes, and ``run(args)`` with
    Ctrl-C and SIGTERM ending it in one line that says ``stopped`` (where
    the work is left)."""
    def main(argv=None):
        from vae import launch
        args = build_parser().parse_args(argv)
        launch.single_process_or_exit()
        with stopped_in_one_line(stopped):
            return run(args)
    return main

