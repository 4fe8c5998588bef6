"""Regenerate the figures of "Variational Autoencoder徹底解説" from a model.

    python scripts/plot_latent.py --model result/z2/model.npz
    python scripts/plot_latent.py --model result/model.npz --only tsne prior

The model file (written by scripts/train.py) carries its own sizes. The MNIST
test split is encoded once; the figures go to --out (default: a figures/
folder beside the model):

  reconstruction  compare_reconstruction.png  10 test inputs beside decode(mu)
  scatter         scatter.png                 latent means of 5000 test images*
  scatter-arrow   scatter_with_arrow.png      the same, arrow START->END mean*
  map             2dim_map.png                decodes over z in [-2,2]^2, path*
  interpolation   vae_<S>to<E>_dim_<D>.gif    first test S -> first test E, 81
                  interpolation_sheet.png     frames; the sheet is the
                                              article's download-2.png
  all-pairs       vae_all_9to9.gif            every digit to every digit, 80
                                              frames (t there and back)
  tsne            tsne.png, projector/        t-SNE of the first --tsne-samples
                                              latent means; projector/ holds
                                              all test means as TSV files for
                                              TensorBoard's embedding projector
  prior           prior_samples.png           decodes of z ~ N(0, I)
  loss            loss.png                    from the training log beside the
                                              model, when there is one

* only for a model with a 2-D latent: they draw z itself. For other sizes they
are skipped with a note (tsne.png is the 2-D view of such a model).
"""
import argparse
import json
import os
import sys

import matplotlib
matplotlib.use('Agg')  # before anything imports pyplot

import numpy  # NOQA: E402
from tqdm import tqdm  # NOQA: E402

from vae import cli  # NOQA: E402  (vae before anything imports chainer)
from vae import data as mnist  # NOQA: E402
from vae.viz import figure_files  # NOQA: E402
from vae.viz import figures  # NOQA: E402
from vae.eval import inference  # NOQA: E402
from vae import device as device_lib  # NOQA: E402
from vae.atomic import prepare_outputs, save_png  # NOQA: E402
from vae.train.run_folder import LOG_FILE  # NOQA: E402
from vae.train.model_files import ModelFileError, load_model  # NOQA: E402

#: Every figure the script can make, in the order it makes them.
FIGURES = ('reconstruction', 'scatter', 'scatter-arrow', 'map',
           'interpolation', 'all-pairs', 'tsne', 'prior', 'loss')
#: Figures that plot z itself, so need a 2-D latent.
TWO_D_ONLY = ('scatter', 'scatter-arrow', 'map')
#: Figures that need no data besides the model (and its log).
NO_DATA = ('prior', 'loss')

N_RECONSTRUCTIONS = 10  # the article's 10 pairs
N_SCATTER = 5000  # the article plots the first 5000 test images
MAP_TILES = 25  # per side, over MAP_EXTENT in z1 and z2
MAP_EXTENT = (-2.0, 2.0)
N_INTERPOLATION = 81  # 9 x 9 in the sheet
N_ALL_PAIRS_T = 40  # values of t, played forward then back
N_PRIOR = 100


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    cli.add_model_arguments(p)
    p.add_argument('--out', '-o', type=cli.path,
                   help='output folder (default: figures/ beside the model)')
    cli.add_data_dir_argument(p)
    p.add_argument('--only', nargs='+', choices=FIGURES, metavar='NAME',
                   help='make only these figures: %s' % ', '.join(FIGURES))
    p.add_argument('--start', type=int, default=0, choices=range(10),
                   metavar='DIGIT',
                   help='first digit of the interpolation and the arrow '
                   '(default %(default)s)')
    p.add_argument('--end', type=int, default=7, choices=range(10),
                   metavar='DIGIT',
                   help='last digit of the interpolation and the arrow '
                   '(default %(default)s)')
    p.add_argument('--tsne-samples', type=int, default=2000, metavar='N',
                   help='test images in the t-SNE figure (default '
                   '%(default)s; all 10000 take many minutes on 2 cores)')
    p.add_argument('--seed', type=cli.seed, default=0,
                   help='seed of the prior samples and t-SNE (default '
                   '%(default)s)')
    cli.add_device_arguments(p)
    cli.add_progress_argument(p, 'the progress bars')
    return p


#: Where Ctrl-C or SIGTERM leaves the work (its one line says so).
STOPPED = ('the figures it wrote are whole (none is left half-written); run '
           'the same command to make them all')


def run(args):
    """The work of the command, on the parsed ``args``."""
    if args.tsne_samples < 2:
        sys.exit('error: --tsne-samples must be at least 2')
    try:
        model = load_model(args.model, args.activation)
        if model.n_in != mnist.N_PIXELS:
            sys.exit('error: %s takes %d inputs, but the figures are of '
                     'MNIST images of %d pixels' % (args.model, model.n_in,
                                                    mnist.N_PIXELS))
        device = device_lib.get_device(args.gpu, args.device)
        out = prepare_outputs(cli.check_out_folder(args.out or os.path.join(
            os.path.dirname(os.path.abspath(args.model)), 'figures')))
        prepare_outputs(os.path.join(out, figure_files.PROJECTOR))
        model.to_device(device)
        plan = plan_figures(args.only or FIGURES, model.n_latent)
        data = None
        if any(name not in NO_DATA for name in plan):
            data = encode_test_set(model, args)
        for name in tqdm(plan, desc='figures', disable=not args.progress):
            for path in MAKERS[name](model, data, out, args):
                tqdm.write('wrote %s' % path)
    except (ModelFileError, device_lib.DeviceError, mnist.MNISTError,
            OSError) as e:
        sys.exit('error: %s' % e)
    return 0


def plan_figures(names, n_latent):
    """The figures to make for a model with ``n_latent`` latent dimensions.

    Prints a note naming each 2-D-only figure it leaves out.
    """
    skipped = [name for name in names
               if name in TWO_D_ONLY and n_latent != 2]
    if skipped:
        print('skipped %s: they plot z itself, which needs a 2-D latent, and '
              'this model has %d dimension%s%s' % (
                  ', '.join(skipped), n_latent, 's' if n_latent > 1 else '',
                  ' (tsne.png shows its latent means in 2-D)'
                  if n_latent > 2 else ''))
    if 'tsne' in names and n_latent < 2:
        print('skipped tsne: t-SNE maps latent means of several dimensions '
              'to 2-D, and this model has one')
        skipped.append('tsne')
    return [name for name in FIGURES if name in names and name not in skipped]


class TestSet:
    """The MNIST test images, their labels and their latent means."""

    def __init__(self, images, labels, mu):
        self.images = images  # (N, 784)
        self.labels = labels  # (N,)
        self.mu = mu  # (N, n_latent)


def encode_test_set(model, args):
    test, = mnist.load_mnist(args.data_dir, progress=args.progress,
                                splits=('test',))
    mu, _ = inference.encode(model, test.images)
    return TestSet(test.images, test.labels, mu)


def end_points(data, digits):
    """Latent means of the first test image of each of ``digits``."""
    return data.mu[figures.first_of_each_class(data.labels, digits)]


def make_reconstruction(model, data, out, args):
    x = data.images[:N_RECONSTRUCTIONS]
    fig = figures.reconstruction_grid(x, inference.reconstruct(model, x))
    return [save_png(fig, os.path.join(out, 'compare_reconstruction.png'))]


def make_scatter(model, data, out, args):
    fig = figures.latent_scatter(data.mu[:N_SCATTER], data.labels[:N_SCATTER])
    return [save_png(fig, os.path.join(out, 'scatter.png'))]


def make_scatter_arrow(model, data, out, args):
    fig = figures.latent_scatter(data.mu[:N_SCATTER], data.labels[:N_SCATTER],
                                 arrow=(args.start, args.end))
    return [save_png(fig, os.path.join(out, 'scatter_with_arrow.png'))]


def make_map(model, data, out, args):
    z = figures.latent_grid(MAP_TILES, MAP_EXTENT)  # (25*25, 2)
    z_start, z_end = end_points(data, (args.start, args.end))
    fig = figures.latent_map(
        inference.decode(model, z), MAP_EXTENT,
        trajectory=figures.interpolate(z_start, z_end, N_INTERPOLATION))
    return [save_png(fig, os.path.join(out, '2dim_map.png'))]


def make_interpolation(model, data, out, args):
    z_start, z_end = end_points(data, (args.start, args.end))
    frames = inference.decode(
        model, figures.interpolate(z_start, z_end, N_INTERPOLATION))
    gif = os.path.join(out, 'vae_%dto%d_dim_%d.gif'
                       % (args.start, args.end, model.n_latent))
    figure_files.interpolation_gif(frames, gif, progress=args.progress)
    ts = numpy.linspace(0.0, 1.0, N_INTERPOLATION)
    sheet = save_png(figures.frame_sheet(frames, ts),
                     os.path.join(out, 'interpolation_sheet.png'))
    return [gif, sheet]


def make_all_pairs(model, data, out, args):
    z = figures.all_pairs_latents(end_points(data, range(10)),
                                  figures.there_and_back(N_ALL_PAIRS_T))
    n_frames, k = z.shape[:2]
    images = inference.decode(model, z.reshape(-1, model.n_latent))
    frames = images.reshape(n_frames, k, k, -1)  # (80, 10, 10, 784)
    path = os.path.join(out, 'vae_all_9to9.gif')
    figure_files.all_pairs_gif(frames, path, progress=args.progress)
    return [path]


def make_tsne(model, data, out, args):
    projector = os.path.join(out, figure_files.PROJECTOR)
    written = list(figure_files.write_projector_tsv(data.mu, data.labels,
                                               projector))
    n = min(args.tsne_samples, len(data.mu))
    tqdm.write('t-SNE of %d latent means...' % n)
    embedding = figures.tsne_embedding(data.mu[:n], seed=args.seed)
    written.append(save_png(figures.tsne_scatter(embedding, data.labels[:n]),
                            os.path.join(out, 'tsne.png')))
    return written


def make_prior(model, data, out, args):
    z = numpy.random.RandomState(args.seed).standard_normal(
        (N_PRIOR, model.n_latent)).astype(numpy.float32)
    fig = figures.prior_samples(inference.decode(model, z))
    return [save_png(fig, os.path.join(out, 'prior_samples.png'))]


def make_loss(model, data, out, args):
    log_path = os.path.join(os.path.dirname(os.path.abspath(args.model)),
                            LOG_FILE)
    try:
        with open(log_path) as f:
            log = json.load(f)
    except FileNotFoundError:
        tqdm.write('skipped loss.png: no training log at %s' % log_path)
        return []
    except (OSError, ValueError) as e:
        tqdm.write('skipped loss.png: cannot read the training log %s (%s)'
                   % (log_path, e))
        return []
    if not is_training_log(log):
        tqdm.write('skipped loss.png: %s is not a training log (a list of '
                   'entries with an epoch each)' % log_path)
        return []
    return [save_png(figures.loss_curves(log), os.path.join(out, 'loss.png'))]


def is_training_log(log):
    """True for what LogReport writes: a list of dicts with an epoch."""
    return isinstance(log, list) and all(
        isinstance(e, dict) and isinstance(e.get('epoch'), (int, float))
        for e in log)


MAKERS = {
    'reconstruction': make_reconstruction,
    'scatter': make_scatter,
    'scatter-arrow': make_scatter_arrow,
    'map': make_map,
    'interpolation': make_interpolation,
    'all-pairs': make_all_pairs,
    'tsne': make_tsne,
    'prior': make_prior,
    'loss': make_loss,
}


main = cli.one_process_main(build_parser, run, STOPPED)
