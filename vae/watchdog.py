"""The watchdog of ``--rank-timeout``: a thread on each rank of an MPI job that
ends the whole job when its rank has made no progress for a set time (a
rank stopped without dying, SIGSTOP or a hung file system, would otherwise
leave the others waiting forever). The training loop and the evaluation
say :func:`progress` at every update, batch and exchange.
"""
import contextlib
import functools
import threading
import time

#: Seconds a rank may go without progress before its watchdog ends the
#: job (``--rank-timeout``): half an hour, the default ``timeout`` of
#: PyTorch's process groups; 0 means no limit.
RANK_TIMEOUT = 1800

#: The watchdog of this rank while one watches (:func:`watched`).
_watchdog = None


class Watchdog:
    """Ends the MPI job when this rank has made no progress for ``timeout``
    seconds.

    A thread checks how long ago :meth:`pet` was last called (the training loop
    calls it every iteration, an evaluation every batch or chunk, and
    ``agree`` and ``root_first`` after each exchange: see :func:`progress`).
    Past ``timeout`` it says so in one line naming the rank and
    ``--rank-timeout``, and aborts the job (:meth:`vae.parallel.Ranks.abort`).
    A rank that waits for a stopped one makes no progress either, so the job
    ends even where the stopped rank cannot say anything.

    Args:
        ranks (vae.parallel.Ranks): This rank (its ``abort`` ends the job).
        timeout (float): Seconds without progress that end the job.
    """

    def __init__(self, ranks, timeout):
        self._ranks = ranks
        self.timeout = timeout
        self._last = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name='rank-watchdog')

    def pet(self):
        """This rank made progress: the time without it starts again."""
        self._last = time.monotonic()

    def idle(self):
        """Seconds since the last progress."""
        return time.monotonic() - self._last

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        if self._thread.is_alive() and \
                self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self):
        interval = min(max(self.timeout / 20.0, 0.05), 10.0)
        while not self._stopped.wait(interval):
            if self.idle() >= self.timeout:
                self.expire()
                return

    def expire(self):
        """End the job: one line naming the rank and the flag, then
        ``MPI_Abort``."""
        self._ranks.abort(
            'error: no progress on rank %d of %d for %g s '
            '(--rank-timeout): this rank, or a rank it waits for, is '
            'stopped or hangs; stopping every rank (a larger '
            '--rank-timeout allows slower steps)'
            % (self._ranks.rank, self._ranks.size, self.timeout))


@contextlib.contextmanager
def watched(ranks, timeout=RANK_TIMEOUT):
    """Within, a :class:`Watchdog` watches this rank of ``ranks`` (none with
    ``timeout`` 0; a process alone is not watched:
    :meth:`vae.parallel.OneProcess.watched`); :func:`progress` pets it.
    Yields the watchdog or ``None``."""
    global _watchdog
    if not timeout:
        yield None
        return
    dog = Watchdog(ranks, timeout).start()
    _watchdog = dog
    try:
        yield dog
    finally:
        _watchdog = None
        dog.stop()


def progress():
    """Say that this rank has made progress (its watchdog, where one
    watches, starts counting again)."""
    dog = _watchdog
    if dog is not None:
        dog.pet()


def with_progress(func):
    """``func`` that says :func:`progress` before each call."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        progress()
        return func(*args, **kwargs)
    return wrapper
