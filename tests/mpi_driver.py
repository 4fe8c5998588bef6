"""Runs the train or evaluate command as one rank of an MPI job,
with probes and injected faults for tests/test_parallel.py.

    mpiexec -n 2 python tests/mpi_driver.py PROBES SCRIPT [FAULT] ARGS...

SCRIPT is ``train`` or ``evaluate``; ARGS go to its ``main``. When it
returns, each rank writes ``PROBES/rank<r>.json``:

* ``updates``: after every update, the iteration, a digest of the weights
  and the losses this rank observed (before they are averaged);
* ``initial``: the digest of the weights before the first update;
* ``writes``: every file written through :mod:`vae.atomic`; ``locks``:
  every run folder locked;
* ``rows``: a digest of each image of this rank's training share;
* ``numpy_state``: NumPy's random state (its first words) at the first
  update.

FAULT, ``--fault=KIND@RANK:ITERATION``, happens on that rank before that
iteration's update: ``nan`` (the loss becomes NaN), ``oserror`` (an
OSError, as a full disk gives), ``uncaught`` (a RuntimeError that nothing
catches), ``kill`` (SIGKILL), ``stop`` (SIGSTOP: the rank stops without
dying); ``nodata@RANK`` makes loading MNIST fail on that rank.
"""
import hashlib
import json
import os
import pathlib
import signal
import sys

HERE = pathlib.Path(__file__).resolve().parent
# this checkout's vae, whatever copy of it is installed
sys.path[:0] = [str(HERE), str(HERE.parent)]
from testutil import command  # NOQA: E402
from vae import atomic  # NOQA: E402
from vae import data as mnist  # NOQA: E402
from vae.train import run_folder, updater  # NOQA: E402

import chainer  # NOQA: E402
import numpy  # NOQA: E402
from mpi4py import MPI  # NOQA: E402

RANK = MPI.COMM_WORLD.rank
probes = {'updates': [], 'initial': None, 'writes': [], 'locks': [],
          'rows': None, 'numpy_state': None}
now = {'iteration': None}


def digest(model):
    h = hashlib.sha1()
    for name, param in sorted(model.namedparams()):
        h.update(name.encode())
        h.update(numpy.ascontiguousarray(param.array).tobytes())
    return h.hexdigest()


def install_probes():
    original_path = atomic.atomic_path
    original_lock = run_folder.lock
    original_update = updater.Updater.update_core

    def atomic_path(path):
        probes['writes'].append(os.fspath(path))
        return original_path(path)

    def lock(out):
        probes['locks'].append(os.fspath(out))
        return original_lock(out)

    def update_core(self):
        model = self.get_optimizer('main').target
        if probes['initial'] is None:
            probes['initial'] = digest(model)
            probes['numpy_state'] = [
                int(v) for v in numpy.random.get_state()[1][:4]]
            data = self.get_iterator('main').dataset
            probes['rows'] = sorted(hashlib.sha1(row.tobytes()).hexdigest()
                                    for row in numpy.asarray(data))
        now['iteration'] = self.iteration + 1
        fault(self.iteration + 1)
        original_update(self)
        now['iteration'] = None
        observation = chainer.reporter.get_current_reporter().observation
        probes['updates'].append(dict(
            iteration=self.iteration, digest=digest(model),
            **{key: float(chainer.as_array(observation['main/' + key]))
               for key in ('loss', 'reconstr', 'kl')}))

    atomic.atomic_path = atomic_path
    run_folder.lock = lock
    updater.Updater.update_core = update_core


FAULT = {'kind': None, 'rank': None, 'iteration': None}


def fault(iteration):
    if FAULT['rank'] != RANK or FAULT['iteration'] != iteration:
        return
    kind = FAULT['kind']
    if kind == 'oserror':
        raise OSError(28, 'injected: no space left on device')
    if kind == 'uncaught':
        raise RuntimeError('injected failure')
    if kind == 'kill':
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == 'stop':
        os.kill(os.getpid(), signal.SIGSTOP)


def install_fault(spec):
    kind, where = spec.split('@')
    rank, _, iteration = where.partition(':')
    FAULT.update(kind=kind, rank=int(rank),
                 iteration=int(iteration) if iteration else None)
    if kind == 'nan':
        original_init = updater.Updater.__init__

        def init(self, iterator, optimizer, loss_func, *args, **kwargs):
            def nan_at_the_iteration(x):
                loss = loss_func(x)
                if RANK == FAULT['rank'] and \
                        now['iteration'] == FAULT['iteration']:
                    return loss * float('nan')
                return loss
            original_init(self, iterator, optimizer, nan_at_the_iteration,
                          *args, **kwargs)

        updater.Updater.__init__ = init
    if kind == 'nodata' and RANK == FAULT['rank']:
        def load_mnist(*args, **kwargs):
            raise mnist.MNISTError('injected: MNIST not found here')
        mnist.load_mnist = load_mnist


def main():
    folder, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if args and args[0].startswith('--fault='):
        install_fault(args.pop(0)[len('--fault='):])
    install_probes()
    status = command(script).main(args)
    with open(os.path.join(folder, 'rank%d.json' % RANK), 'w') as f:
        json.dump(probes, f)
    return status


if __name__ == '__main__':
    sys.exit(main())
