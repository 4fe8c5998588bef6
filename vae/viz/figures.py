"""Figures of the article: one function per figure, and the maths behind them.

The figures are those of "Variational Autoencoder徹底解説" (Qiita, 2017):
reconstructions through mu, the 2-D latent scatter (with the arrow from the
mean of the 0s to the mean of the 7s), the 25x25 map of decodes over z in [-2,
2]^2, the 0 -> 7 interpolation as a 9x9 sheet, a t-SNE view of the latent
means, decodes of prior samples and the loss curves. The GIFs and the files of
TensorBoard's projector are written by :mod:`vae.viz.figure_files`; the swiss
roll of the manifold hypothesis by ``scripts/plot_swiss_roll.py``.

Each figure function takes NumPy arrays and returns a matplotlib ``Figure``
(saving is the caller's job). The arithmetic (tiling, grids of z,
interpolation, class means) lives in :mod:`vae.viz.arrays`. Nothing here picks
a backend: the scripts choose Agg before pyplot is first imported, and the
figures here never touch pyplot.
"""
import numpy
from matplotlib import patheffects
from matplotlib.figure import Figure

# the figures' arithmetic (vae/viz/arrays.py), also reached from here
from vae.viz.arrays import (  # NOQA: F401
    SIDE, all_pairs_latents, as_images, class_means, first_of_each_class,
    grid_shape, interpolate, latent_grid, there_and_back, tile_images,
    to_uint8, tsne_embedding, upscale)
#: Colormap of the scatter plots, as in the article.
SCATTER_CMAP = 'rainbow'


# ------------------------------------------------------------------ figures

def _image_axes(ax, image, title=None, fontsize=None, **kwargs):
    ax.imshow(image, cmap='gray', vmin=0.0, vmax=1.0,
              interpolation='nearest', **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)


def _labelled_scatter(fig, ax, points, labels, digit_size=30):
    """Scatter coloured by label, each class's digit at its mean, colorbar."""
    points = numpy.asarray(points)
    labels = numpy.asarray(labels)
    paths = ax.scatter(points[:, 0], points[:, 1], c=labels, s=8,
                       cmap=SCATTER_CMAP, alpha=0.6)
    # a white outline keeps each digit readable over points of any colour
    outline = [patheffects.withStroke(linewidth=3, foreground='white')]
    for c, mean in zip(*class_means(points[:, :2], labels)):
        ax.text(mean[0], mean[1], str(c), fontsize=digit_size,
                fontweight='bold', ha='center', va='center',
                path_effects=outline)
    fig.colorbar(paths, ax=ax)
    return ax


def reconstruction_grid(originals, reconstructions, pairs_per_row=5):
    """Test inputs beside their reconstructions (compare_reconstruction.png).

    Args:
        originals: (N, 784) inputs in [0, 1] (the article: N = 10).
        reconstructions: (N, 784) decodes through mu.
        pairs_per_row (int): Pairs side by side in one row.

    Returns:
        matplotlib.figure.Figure: 2N axes; pair k is axes 2k (the input)
        and 2k+1 (its reconstruction).
    """
    originals = as_images(originals)  # (N, 28, 28)
    reconstructions = as_images(reconstructions)  # (N, 28, 28)
    if originals.shape != reconstructions.shape:
        raise ValueError('originals %s and reconstructions %s differ in shape'
                         % (originals.shape, reconstructions.shape))
    n = len(originals)
    n_rows = int(numpy.ceil(n / pairs_per_row))
    n_cols = 2 * min(n, pairs_per_row)
    fig = Figure(figsize=(1.2 * n_cols, 1.4 * n_rows + 0.3))
    for k in range(n):
        row, col = divmod(k, pairs_per_row)
        for side, (image, title) in enumerate(
                ((originals[k], 'input'), (reconstructions[k], 'output'))):
            ax = fig.add_subplot(n_rows, n_cols, row * n_cols + 2 * col
                                 + side + 1)
            _image_axes(ax, image, title, fontsize=9)
    fig.suptitle('inputs and their reconstructions through mu')
    return fig


def latent_scatter(mu, labels, arrow=None):
    """2-D latent means coloured by label (scatter.png, scatter_with_arrow).

    Args:
        mu: (N, 2) latent means (the article: the first 5000 test images).
        labels: (N,) their digits.
        arrow: ``(start_class, end_class)`` to draw an arrow from the mean
            of one class to the mean of the other (the article: (0, 7)).

    Returns:
        matplotlib.figure.Figure: the scatter axes and its colorbar; with
        ``arrow``, an annotation whose ``xyann`` is the start mean and
        ``xy`` the end mean.
    """
    mu = numpy.asarray(mu)
    if mu.ndim != 2 or mu.shape[1] != 2:
        raise ValueError('latent_scatter needs 2-D latent means, got shape %s'
                         % (mu.shape,))
    fig = Figure(figsize=(8, 7))
    ax = fig.add_subplot(1, 1, 1)
    _labelled_scatter(fig, ax, mu, labels)
    if arrow is not None:
        classes, means = class_means(mu, labels)
        lookup = dict(zip(classes.tolist(), means))
        missing = [c for c in arrow if c not in lookup]
        if missing:
            raise ValueError('no point of class %s to draw the arrow from '
                             'or to' % missing)
        start, end = lookup[arrow[0]], lookup[arrow[1]]
        ax.annotate('', xy=tuple(end), xytext=tuple(start), zorder=3,
                    arrowprops=dict(arrowstyle='-|>', color='black', lw=3,
                                    mutation_scale=25))
    ax.set_xlabel('z1')
    ax.set_ylabel('z2')
    return fig


def latent_map(images_grid, extent=(-2.0, 2.0), trajectory=None):
    """Decodes over a grid of z tiled into one image (2dim_map.png).

    Args:
        images_grid: (n*n, 784) decodes of :func:`latent_grid` (n, extent),
            in its order.
        extent: ``(lo, hi)`` the grid spans in z1 and in z2.
        trajectory: (T, 2) path in z to draw in red (the article: the
            0 -> 7 interpolation).

    Returns:
        matplotlib.figure.Figure: one axes whose data coordinates are z:
        each tile is centred on its z, +z2 up.
    """
    images = as_images(images_grid)  # (n*n, 28, 28)
    n = int(round(numpy.sqrt(len(images))))
    if n * n != len(images):
        raise ValueError('latent_map needs n*n images, got %d' % len(images))
    lo, hi = extent
    half = (hi - lo) / (n - 1) / 2 if n > 1 else 0.5
    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot(1, 1, 1)
    # origin='upper' draws the canvas's first row at the top, which
    # latent_grid made z2 = hi; the half tile makes tile centres land on z.
    ax.imshow(tile_images(images, n, n), cmap='gray', vmin=0.0, vmax=1.0,
              extent=(lo - half, hi + half, lo - half, hi + half),
              origin='upper', interpolation='nearest')
    if trajectory is not None:
        trajectory = numpy.asarray(trajectory)
        ax.plot(trajectory[:, 0], trajectory[:, 1], color='red', lw=2)
    # the map's square stays the view even where the path leaves it
    ax.set_xlim(lo - half, hi + half)
    ax.set_ylim(lo - half, hi + half)
    ax.set_xlabel('z1')
    ax.set_ylabel('z2')
    return fig


def frame_sheet(frames, ts):
    """Interpolation frames in a grid, each titled with its t (download-2.png).

    Args:
        frames: (T, 784) decodes (the article: 81, laid out 9x9).
        ts: (T,) their values of t.

    Returns:
        matplotlib.figure.Figure: T axes titled ``t = <t>``.
    """
    frames = as_images(frames)  # (T, 28, 28)
    if len(frames) != len(ts):
        raise ValueError('%d frames but %d values of t'
                         % (len(frames), len(ts)))
    n_rows, n_cols = grid_shape(len(frames))
    fig = Figure(figsize=(1.1 * n_cols, 1.25 * n_rows))
    for k, (frame, t) in enumerate(zip(frames, ts)):
        ax = fig.add_subplot(n_rows, n_cols, k + 1)
        _image_axes(ax, frame, 't = %.4g' % t, fontsize=7)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97,
                        wspace=0.05, hspace=0.3)
    return fig


def prior_samples(images):
    """Decodes of z ~ N(0, I) in a square grid (prior_samples.png).

    Args:
        images: (N, 784) decodes.

    Returns:
        matplotlib.figure.Figure: one axes holding the tiled images.
    """
    images = as_images(images)  # (N, 28, 28)
    n_rows, n_cols = grid_shape(len(images))
    fig = Figure(figsize=(0.6 * n_cols + 0.4, 0.6 * n_rows + 0.7))
    ax = fig.add_subplot(1, 1, 1)
    _image_axes(ax, tile_images(images, n_rows, n_cols, pad=2),
                'decodes of z ~ N(0, I)')
    return fig


def tsne_scatter(embedding, labels):
    """A 2-D t-SNE embedding of latent means, coloured by label (tsne.png).

    Args:
        embedding: (N, 2), e.g. from :func:`tsne_embedding`.
        labels: (N,) digits.

    Returns:
        matplotlib.figure.Figure: the scatter axes and its colorbar.
    """
    fig = Figure(figsize=(8, 7))
    ax = fig.add_subplot(1, 1, 1)
    _labelled_scatter(fig, ax, embedding, labels)
    ax.set_title('t-SNE of the latent means (%d test images)'
                 % len(embedding))
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def loss_curves(log, keys=('main/loss', 'validation/main/loss')):
    """Loss per epoch from a ``LogReport`` log.

    Args:
        log (list of dict): The entries of the training log (JSON).
        keys: The logged values to draw.

    Returns:
        matplotlib.figure.Figure: one axes, a line per key found.
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for key in keys:
        points = [(e['epoch'], e[key]) for e in log if key in e]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker='.', label=key)
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss (nats per image)')
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend()
    return fig
