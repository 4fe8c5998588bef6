"""The updater of every path: Chainer's StandardUpdater, guarded.

Training's non-finite guard and the per-iteration reseeding of a GPU's noise
generator live here, apart from the trainer's set-up in
:mod:`vae.train.trainer`, so that the GPU's graph path
(:mod:`vae.train.graph_updater`) can build on it.
"""
import functools
import math

from chainer import training

from vae import device as device_lib
from vae import parallel
from vae import watchdog


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
        ranks: This process's role (:mod:`vae.parallel`).
    """

    def __init__(self, iterator, optimizer, loss_func, device, seed,
                 ranks=parallel.ONE_PROCESS):
        super(Updater, self).__init__(
            iterator, optimizer, device=device,
            loss_func=loss_func and self._guarded(loss_func))
        self._seed = seed
        self._ranks = ranks

    def update_core(self):
        watchdog.progress()  # for the watchdog of --rank-timeout
        # the run's device current: its generator draws the noise (CuPy
        # draws from the current device's)
        with device_lib.current(self.device):
            device_lib.reseed_noise(self.device, self._seed, self.iteration)
            super(Updater, self).update_core()

    def _guarded(self, loss_func):
        @functools.wraps(loss_func)
        def guarded(*args):
            loss = loss_func(*args)
            value = float(loss.array)
            bad = self._ranks.any_rank(not math.isfinite(value))
            if bad:
                iterator = self.get_iterator('main')
                # the batch that ends an epoch belongs to it
                epoch = iterator.epoch + (0 if iterator.is_new_epoch else 1)
                raise NonFiniteLossError(
                    'non-finite loss %s at iteration %d (epoch %d); '
                    'training stopped before this update'
                    % (self._ranks.where(bad, value), self.iteration + 1,
                       epoch))
            return loss
        return guarded
