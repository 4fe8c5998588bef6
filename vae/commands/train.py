"""Train the article's VAE on MNIST with Chainer's Trainer.

    python scripts/train.py --dim-z 20 --gpu 0
    python scripts/train.py --config configs/article_z2.json --out result/z2
    mpiexec -n 2 python scripts/train.py --communicator naive --out result/n2

Defaults come from configs/default.json; --config FILE overrides them and flags
override both. Everything is written under --out (see docs/training.md). Under
mpiexec with --communicator, each of the N processes trains on its share of the
data and --batchsize is the batch of one process (docs/processes.md).
"""
import argparse
import sys

import matplotlib
matplotlib.use('Agg')  # before anything imports pyplot

from vae import cli  # NOQA: E402  (vae before anything imports chainer)
from vae import config as config_lib  # NOQA: E402
from vae import device as device_lib  # NOQA: E402
from vae import data as mnist
from vae.train import trainer
from vae import launch  # NOQA: E402
from vae import parallel  # NOQA: E402
from vae.memory import MemoryEstimateError  # NOQA: E402
from vae.model import ACTIVATIONS  # NOQA: E402
from vae.train.resume import ResumeError  # NOQA: E402
from vae.train.run_folder import RunFolderError  # NOQA: E402
from vae.train.model_files import ModelFileError  # NOQA: E402
from vae.train.updater import NonFiniteLossError  # NOQA: E402

TEST_SUBSET = (1000, 200)  # train and test images kept by --test


def build_parser():
    d = config_lib.defaults()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    # Settings default to None so that only the flags a user gives override
    # the config file; the help shows the value of configs/default.json.
    p.add_argument('--config', help='JSON config file (see configs/)')
    # the article's flags for the sizes the VAE calls n_latent and n_h
    p.add_argument('--dim-z', '-z', dest='n_latent', type=int,
                   help='size of the latent z, n_latent (default %s)'
                   % d.n_latent)
    p.add_argument('--n-hidden', dest='n_h', type=int,
                   help='width of the hidden layers, n_h (default %s)'
                   % d.n_h)
    p.add_argument('--activation', choices=sorted(ACTIVATIONS),
                   help='hidden activation (default %s)' % d.activation)
    p.add_argument('--C', dest='C', type=float,
                   help='weight of the KL term (default %s)' % d.C)
    p.add_argument('--k', type=int,
                   help='samples of z per image in training (default %s)'
                   % d.k)
    p.add_argument('--k-test', dest='k_test', type=int,
                   help='samples of z per image in evaluation (default %s)'
                   % d.k_test)
    p.add_argument('--epoch', '-e', type=int,
                   help='epochs (default %s)' % d.epoch)
    p.add_argument('--batchsize', '-b', type=int,
                   help='minibatch size (default %s)' % d.batchsize)
    p.add_argument('--alpha', type=float,
                   help="Adam's step size (default %s)" % d.alpha)
    p.add_argument('--seed', type=int, help='random seed (default %s)'
                   % d.seed)
    p.add_argument('--binarize', choices=['threshold', 'dynamic'],
                   help='binarize MNIST (default: continuous pixels)')
    p.add_argument('--snapshot-retain', dest='snapshot_retain', type=int,
                   help='snapshots kept in --out (default %s)'
                   % d.snapshot_retain)
    cli.add_device_arguments(p)
    cli.add_communicator_argument(p)
    p.add_argument('--out', '-o', default='result', type=cli.path,
                   help='output folder (default %(default)s)')
    p.add_argument('--resume', '-r', metavar='SNAPSHOT',
                   help='start from this snapshot, whose settings the run\'s '
                   'must be (by default, training continues from the latest '
                   'snapshot in --out)')
    cli.add_data_dir_argument(p)
    p.add_argument('--test', action='store_const', const=True,
                   help='smoke run on %d train / %d test images'
                   % TEST_SUBSET)
    cli.add_progress_argument(p)
    p.add_argument('--fast', action=argparse.BooleanOptionalAction,
                   help='on the CPU, train and evaluate with the fused loss '
                   'and the flat Adam of vae/kernels/: the same '
                   'numbers bit for bit, 1.4-1.8x faster at batch 100 (see '
                   'scripts/benchmark.py); --no-fast uses Chainer\'s own '
                   'functions throughout (default %s)'
                   % ('--fast' if d.fast else '--no-fast'))
    p.add_argument('--cuda-graph', dest='cuda_graph',
                   action=argparse.BooleanOptionalAction,
                   help='on a GPU, replay the whole training step as one '
                   'CUDA graph (vae/kernels/cuda_graph.py; needs '
                   'nvmath-python); '
                   'not yet run on a GPU, so off by default (default %s)'
                   % ('--cuda-graph' if d.cuda_graph else
                      '--no-cuda-graph'))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.stop_on_sigterm()
    ranks = parallel.ONE_PROCESS  # until the role is known
    try:
        ranks = parallel.create_ranks(args.communicator)
        with ranks.watched(args.rank_timeout):
            args.progress = args.progress and ranks.is_root
            config, device, (train_data, test_data) = ranks.agree(
                lambda: setup(args, ranks))
            trainer.train(config, args.out, train_data, test_data, device,
                           resume=args.resume,
                           progress=args.progress,
                           explicit_config=args.config is not None,
                           ranks=ranks)
    except (config_lib.ConfigError, device_lib.DeviceError,
            mnist.MNISTError, ResumeError, RunFolderError,
            ModelFileError, NonFiniteLossError, trainer.TrainingInterrupted,
            MemoryEstimateError,
            parallel.DistributedError, OSError) as e:
        sys.exit(ranks.exit_status(e))
    except KeyboardInterrupt as e:  # before training began
        sys.exit(cli.interrupted(e, 'training had not begun; run the same '
                                 'command to start it'))
    return 0


def setup(args, ranks):
    """The settings, the device and the data of this process."""
    overrides = {key: getattr(args, key, None)
                 for key in config_lib.NAMES}
    overrides['ranks'] = ranks.size  # set by mpiexec -n alone
    config = config_lib.resolve(args.config, overrides)
    cli.check_out_folder(args.out)  # before the data is read
    device = device_lib.get_device(args.gpu, args.device, ranks.intra_rank)
    launch.check_device(args.communicator, device)
    return config, device, load_data(config, args)


def load_data(config, args):
    """Train and test images as the config says (labels are not needed)."""
    mode = config.binarize
    # dynamic: continuous training images, binarized afresh every epoch, and
    # one fixed binarization of the test images
    train, test = mnist.load_mnist(
        args.data_dir, binarize=None if mode == 'dynamic' else mode,
        seed=config.seed, progress=args.progress)
    train_x, test_x = train.images, test.images
    if config.test:
        train_x, test_x = train_x[:TEST_SUBSET[0]], test_x[:TEST_SUBSET[1]]
    if mode == 'dynamic':
        train_x = mnist.DynamicBinarized(train_x, seed=config.seed)
        test_x = mnist.binarize_images(test_x, 'dynamic', rng=config.seed)
    return train_x, test_x

