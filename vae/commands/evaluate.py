"""Evaluate a VAE on MNIST: -ELBO, importance-sampled -log p(x), active units.

    python scripts/evaluate.py --model result/model.npz
    python scripts/evaluate.py --model result/model.npz --limit 500 --gpu 0

The -ELBO uses --k samples per image, as the training's test loss does;
the -log p(x) estimate uses --iw-samples importance samples per image
(Burda et al. 2015, arXiv:1509.00519; 5000 in their Table 1). On the
article's network (784-500-500-20) and the 2-core CPU this was written on,
5000 samples take about %(seconds_per_100)d s per 100 images, so the
whole test set (10000 images) takes about
%(minutes_test)d minutes: use --limit, a GPU, or fewer samples for a quick
look. Numbers are in nats per image; with the article's continuous pixels
they are not comparable with binarized-MNIST figures.

A table goes to stdout and the results to --out (JSON, written atomically;
default: evaluation_<split>.json beside the model).

Over several processes (mpiexec -n N ... --communicator naive) each rank
evaluates its share of the batches, drawing the noise of each batch from
(--seed, batch index), and rank 0 combines the sums: N ranks give the same
numbers as one (see docs/processes.md).
"""
import argparse
import json
import math
import os
import sys

from vae import cli  # vae before anything imports chainer
from vae import config as config_lib
from vae import device as device_lib
from vae import data as mnist
from vae import parallel
from vae.eval import estimators
from vae import memory
from vae.atomic import output_file, write_text
from vae.train.model_files import ModelFileError, load_model

#: Measured with this script (``make article-eval``: the article's trained
#: models, the whole test set, 2-core CPU): seconds per 100 test images at
#: 5000 importance samples. The ELBO (k = 10) takes well under 1 % of that.
SECONDS_PER_100_IMAGES = 9


def _nats(value):
    return '-' if value is None else '%.2f' % value


COLUMNS = (  # (header, cell text from the result dict)
    ('split', lambda r: r['split']),
    ('N', lambda r: '%d' % r['n']),
    ('k', lambda r: '%d' % r['k']),
    ('-ELBO', lambda r: _nats(r['neg_elbo'])),
    ('reconstr', lambda r: _nats(r['reconstr'])),
    ('KL', lambda r: _nats(r['kl'])),
    ('IW K', lambda r: '%d' % r['iw_samples']),
    ('-log p(x)', lambda r: _nats(r['neg_log_likelihood'])),
    ('active units', lambda r: '%d/%d' % (r['active_units'],
                                          r['n_latent'])),
)


def build_parser():
    d = config_lib.defaults()
    p = argparse.ArgumentParser(
        description=__doc__ % {
            'seconds_per_100': SECONDS_PER_100_IMAGES,
            'minutes_test': round(SECONDS_PER_100_IMAGES * 100 / 60.0)},
        formatter_class=argparse.RawTextHelpFormatter)
    cli.add_model_arguments(p)
    p.add_argument('--split', choices=('test', 'train'), default='test',
                   help='MNIST split (default %(default)s)')
    p.add_argument('--k', type=cli.positive_int, default=d.k_test,
                   help='samples of z per image for the -ELBO (default '
                   '%(default)s, as k_test in configs/default.json)')
    p.add_argument('--iw-samples', dest='iw_samples',
                   type=cli.non_negative_int,
                   metavar='K',
                   default=estimators.DEFAULT_IW_SAMPLES,
                   help='importance samples per image for -log p(x); 0 skips '
                   'it (default %%(default)s, ~%d s per 100 images on a '
                   '2-core CPU)' % SECONDS_PER_100_IMAGES)
    p.add_argument('--iw-chunk', dest='iw_chunk', type=cli.positive_int,
                   metavar='N',
                   default=estimators.DEFAULT_CHUNK,
                   help='importance samples decoded per pass; memory grows '
                   'with it, not with --iw-samples (default %%(default)s: '
                   '%d images x %d samples per pass)'
                   % (estimators.DEFAULT_BATCHSIZE, estimators.DEFAULT_CHUNK))
    p.add_argument('--limit', type=cli.positive_int, metavar='N',
                   help='evaluate only the first N images of the split')
    p.add_argument('--binarize', choices=mnist.BINARIZE_MODES,
                   help='binarize the images (dynamic: one Bernoulli sample '
                   'fixed by --seed); default: continuous pixels, as the '
                   'article')
    cli.add_data_dir_argument(p)
    cli.add_device_arguments(p)
    cli.add_communicator_argument(p)
    p.add_argument('--seed', type=cli.seed, default=d.seed,
                   help='seed of the sampling noise and of --binarize dynamic '
                   '(default %(default)s)')
    p.add_argument('--out', '-o', metavar='FILE.json', type=cli.path,
                   help='results file, or a folder (an existing one, or a '
                   'path ending in /) to hold evaluation_<split>.json '
                   "(default: the model's folder); checked before the work")
    cli.add_progress_argument(p)
    return p


#: Where Ctrl-C or SIGTERM leaves an evaluation (its one line says so).
STOPPED = ('no results were written (nothing is left half-written); run '
           'the same command to evaluate again')


def main(argv=None):
    args = build_parser().parse_args(argv)
    with cli.stopped_in_one_line(STOPPED):
        ranks = parallel.ranks_or_exit(args.communicator)
        try:
            with ranks.watched(args.rank_timeout):
                return run(args, ranks)
        except KeyboardInterrupt as e:
            # over a job, one rank stopped: the others would wait for it
            # forever (alone, the one line of cli.stopped_in_one_line)
            sys.exit(ranks.exit_status(cli.interruption(e, STOPPED)))


def run(args, ranks):
    """Evaluate as ``args`` say, as this process of ``ranks``."""
    try:
        args.progress = args.progress and ranks.is_root
        model, images, device, out = ranks.agree(lambda: setup(args, ranks))
    except (ModelFileError, device_lib.DeviceError, mnist.MNISTError,
            parallel.DistributedError, memory.MemoryEstimateError,
            OSError) as e:
        sys.exit(ranks.exit_status(e))

    model.to_device(device)
    options = dict(k=args.k, iw_samples=args.iw_samples,
                   iw_chunk=args.iw_chunk,
                   batchsize=estimators.DEFAULT_BATCHSIZE,
                   progress=args.progress)
    result = ranks.evaluate(model, images, device, args.seed, **options)
    if result is None:  # not rank 0
        return 0
    result.update(
        model=os.path.abspath(args.model), split=args.split,
        limit=args.limit, binarize=args.binarize, seed=args.seed,
        iw_chunk=args.iw_chunk, device=str(device),
        ranks=ranks.size, noise=ranks.noise)

    print(format_table(result))
    try:
        write_text(out, json.dumps(finite_or_null(result), indent=2,
                                   sort_keys=True, allow_nan=False) + '\n')
    except OSError as e:
        sys.exit('error: %s' % e)
    print('results written to %s' % out)
    return 0


def setup(args, ranks):
    """The model, the images, the device and (on rank 0) the output file of
    this process, each checked before the work."""
    name = 'evaluation_%s.json' % args.split
    model = load_model(args.model, args.activation)
    memory.check(
        memory.evaluation_bytes(
            model.n_in, model.n_latent, model.n_h,
            estimators.DEFAULT_BATCHSIZE, args.k,
            min(args.iw_chunk, args.iw_samples)),
        'evaluating with --k %d and --iw-chunk %d'
        % (args.k, args.iw_chunk),
        'use a smaller --k or --iw-chunk (the -log p(x) estimate does not '
        'depend on --iw-chunk)')
    out = None
    if ranks.is_root:
        out = output_file(args.out or os.path.join(
            os.path.dirname(os.path.abspath(args.model)), ''), name)
    device = device_lib.get_device(args.gpu, args.device, ranks.intra_rank)
    split, = mnist.load_mnist(
        args.data_dir, binarize=args.binarize, seed=args.seed,
        progress=args.progress, splits=(args.split,))
    images = split.images
    if args.limit is not None:
        images = images[:args.limit]
    if images.shape[1] != model.n_in:
        raise ModelFileError('the model takes %d inputs but MNIST images '
                             'have %d' % (model.n_in, images.shape[1]))
    return model, images, device, out


def finite_or_null(value):
    """``value`` (numbers, and lists and dicts of them) with every NaN or
    infinity replaced by ``None``: JSON has no such numbers, and a result
    that is not a number is written as ``null``."""
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_table(result):
    """A header line and a value line, columns right-aligned."""
    cells = [(header, cell(result)) for header, cell in COLUMNS]
    widths = [max(len(h), len(v)) for h, v in cells]
    return '\n'.join('  '.join(text.rjust(w) for text, w in
                               zip(row, widths))
                     for row in zip(*cells))

