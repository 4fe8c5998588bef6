"""Figures of the article: one function per figure, and the maths behind them.

The figures are those of "Variational Autoencoder徹底解説" (Qiita, 2017):
reconstructions through mu, the 2-D latent scatter (with the arrow from the
mean of the 0s to the mean of the 7s), the 25x25 map of decodes over
z in [-2, 2]^2, the 0 -> 7 interpolation as a 9x9 sheet, a t-SNE view of the
latent means, decodes of prior samples and the loss curves. The GIFs and the
files of TensorBoard's projector are written by :mod:`vae.figure_files`; the
swiss roll of the manifold hypothesis by ``scripts/plot_swiss_roll.py``.

Each figure function takes NumPy arrays and returns a matplotlib ``Figure``
(saving is the caller's job). The arithmetic (tiling, grids of z,
interpolation, class means) lives in small pure functions so that tests can
check it. Nothing here picks a backend: the scripts choose Agg before pyplot
is first imported, and the figures here never touch pyplot.
"""
import numpy
from matplotlib import patheffects
from matplotlib.figure import Figure

#: Side of an MNIST image in pixels.
SIDE = 28
#: Colormap of the scatter plots, as in the article.
SCATTER_CMAP = 'rainbow'


# ---------------------------------------------------------------- pure maths

def as_images(images, side=SIDE):
    """Flat images as squares: (..., side*side) -> (..., side, side)."""
    images = numpy.asarray(images)
    if images.shape[-1] == side * side:
        images = images.reshape(images.shape[:-1] + (side, side))
    if images.shape[-2:] != (side, side):
        raise ValueError('expected images of %d or %dx%d pixels, got shape %s'
                         % (side * side, side, side, images.shape))
    return images


def tile_images(images, n_rows, n_cols, pad=0, fill=1.0):
    """Lay images out row by row on one canvas.

    Args:
        images: (N, 784) or (N, h, w), N <= n_rows * n_cols; image k goes
            to row k // n_cols, column k % n_cols.
        n_rows, n_cols (int): Size of the grid.
        pad (int): Pixels between neighbouring images.
        fill (float): Value of the padding and of empty cells.

    Returns:
        numpy.ndarray: (n_rows*h + (n_rows-1)*pad, n_cols*w + (n_cols-1)*pad).
    """
    images = numpy.asarray(images)
    if images.ndim == 2:
        images = as_images(images)  # (N, 28, 28)
    n, h, w = images.shape
    if n > n_rows * n_cols:
        raise ValueError('%d images do not fit a %dx%d grid'
                         % (n, n_rows, n_cols))
    dtype = numpy.result_type(images.dtype, type(fill))
    canvas = numpy.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad),
                        fill, dtype=dtype)
    for k in range(n):
        top, left = (k // n_cols) * (h + pad), (k % n_cols) * (w + pad)
        canvas[top:top + h, left:left + w] = images[k]
    return canvas


def grid_shape(n):
    """(rows, columns) of the squarest grid with at least ``n`` cells."""
    n_cols = int(numpy.ceil(numpy.sqrt(n)))
    return int(numpy.ceil(n / n_cols)), n_cols


def to_uint8(images):
    """Intensities in [0, 1] as 8-bit gray levels (clipped, rounded)."""
    return (numpy.clip(images, 0.0, 1.0) * 255 + 0.5).astype(numpy.uint8)


def upscale(image, factor):
    """Enlarge each pixel to a ``factor`` x ``factor`` block."""
    return image.repeat(factor, axis=-2).repeat(factor, axis=-1)


def class_means(points, labels):
    """Mean point of every class present.

    Args:
        points: (N, D) latent means.
        labels: (N,) integer labels.

    Returns:
        tuple: ``(classes, means)``: the sorted labels present, (C,), and
        the mean of each class's points, (C, D).
    """
    points = numpy.asarray(points, dtype=numpy.float64)
    labels = numpy.asarray(labels)
    classes = numpy.unique(labels)
    means = numpy.stack([points[labels == c].mean(axis=0) for c in classes])
    return classes, means


def first_of_each_class(labels, classes=range(10)):
    """Index of the first example of each class in ``classes``.

    Raises:
        ValueError: A class has no example.
    """
    labels = numpy.asarray(labels)
    indices = []
    for c in classes:
        found = numpy.flatnonzero(labels == c)
        if found.size == 0:
            raise ValueError('no example of class %r' % (c,))
        indices.append(int(found[0]))
    return numpy.array(indices)


def interpolate(z_start, z_end, n):
    """Points z = (1-t) z_start + t z_end for t in linspace(0, 1, n).

    Args:
        z_start, z_end: (D,) the two ends.
        n (int): Number of points, ends included.

    Returns:
        numpy.ndarray: (n, D), float32; row 0 is z_start, row n-1 z_end.
    """
    z_start = numpy.asarray(z_start, dtype=numpy.float64)
    z_end = numpy.asarray(z_end, dtype=numpy.float64)
    t = numpy.linspace(0.0, 1.0, n)[:, None]  # (n, 1) against (D,)
    return ((1 - t) * z_start + t * z_end).astype(numpy.float32)


def there_and_back(n):
    """``n`` values of t from 0 to 1, then the same values back: (2n,)."""
    t = numpy.linspace(0.0, 1.0, n)
    return numpy.concatenate([t, t[::-1]])


def all_pairs_latents(z_ends, ts):
    """The interpolation between every ordered pair of end points.

    Args:
        z_ends: (K, D), one end point per class (the article: K = 10).
        ts: (T,) values of t.

    Returns:
        numpy.ndarray: (T, K, K, D), float32; ``[f, i, j]`` is
        (1-t_f) z_ends[i] + t_f z_ends[j], so row i of a montage starts at
        class i and column j ends at class j.
    """
    z_ends = numpy.asarray(z_ends, dtype=numpy.float64)
    t = numpy.asarray(ts, dtype=numpy.float64)
    t = t[:, None, None, None]  # (T, 1, 1, 1)
    start = z_ends[None, :, None, :]  # (1, K, 1, D)
    end = z_ends[None, None, :, :]  # (1, 1, K, D)
    return ((1 - t) * start + t * end).astype(numpy.float32)


def latent_grid(n=25, extent=(-2.0, 2.0)):
    """The z of the latent map, in the order its tiles are laid out.

    Tile (r, c) (row r from the top, column c from the left) decodes
    z = (lo + c*step, hi - r*step), step = (hi - lo) / (n - 1): z1 grows to
    the right and z2 grows upwards, so the top row is z2 = hi.

    Args:
        n (int): Tiles per side (the article: 25).
        extent: ``(lo, hi)`` of both coordinates.

    Returns:
        numpy.ndarray: (n*n, 2), float32, row-major over the tiles.
    """
    lo, hi = extent
    values = numpy.linspace(lo, hi, n)
    z2, z1 = numpy.meshgrid(values[::-1], values, indexing='ij')  # (n, n) each
    return numpy.stack([z1, z2], axis=-1).reshape(n * n, 2).astype(
        numpy.float32)  # (n*n, 2)


def tsne_embedding(points, n_components=2, perplexity=30.0, seed=0):
    """t-SNE (van der Maaten & Hinton 2008) of ``points`` with scikit-learn.

    Args:
        points: (N, D) latent means.
        n_components (int): 2 or 3.
        perplexity (float): Lowered to (N-1)/3 for small N, so that the
            3*perplexity nearest neighbours t-SNE looks at exist.
        seed (int): Random state of the optimisation.

    Returns:
        numpy.ndarray: (N, n_components).
    """
    from sklearn.manifold import TSNE  # slow to import; only t-SNE needs it

    points = numpy.asarray(points, dtype=numpy.float32)
    perplexity = min(perplexity, (len(points) - 1) / 3.0)
    tsne = TSNE(n_components=n_components, perplexity=perplexity,
                init='pca', learning_rate='auto', random_state=seed)
    return tsne.fit_transform(points)


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
