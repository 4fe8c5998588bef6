"""The arithmetic behind the figures: NumPy in, NumPy out, no plotting.

Tiling images into sheets, the grid of z that the latent map decodes, the
interpolation between two codes (and there and back for the GIFs), the means
of each class in latent space, and the t-SNE view of the latent means. Small
pure functions, so that tests check them against closed forms.
"""
import numpy

#: Side of an MNIST image in pixels.
SIDE = 28


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
