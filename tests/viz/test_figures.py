"""vae.viz.figures: the maths behind the article's figures, and every figure.

The pure helpers are checked against independent computations; the figure
functions are fed the arrays of a tiny VAE trained here for a few steps on
real MNIST images, and checked for their panels, images, titles and arrows;
the GIF writers for their frames, timelines and pixel sizes.
"""
import os

import numpy
import pytest
from matplotlib.text import Annotation

# one_openmp_thread is an autouse fixture: importing it applies it here
from testutil import N_TRAIN, command, gif_timeline, train_tiny
from testutil import one_openmp_thread  # NOQA: F401
from vae.viz import figure_files
from vae.viz import figures
from vae.eval import inference

plot_swiss_roll = command('plot_swiss_roll')


@pytest.fixture(scope='module')
def model2d(mnist):
    train, _ = mnist
    return train_tiny(train.images[:N_TRAIN], n_latent=2)


@pytest.fixture(scope='module')
def encoded(model2d, mnist):
    """Test images, labels and latent means of the first 1000 test images."""
    _, test = mnist
    images, labels = test.images[:1000], test.labels[:1000]
    mu, _ = inference.encode(model2d, images)
    return images, labels, mu


def stored_frames(frames):
    """Frames a GIF holds: Pillow folds a repeat of the last frame into it."""
    return 1 + sum(not numpy.array_equal(a, b)
                   for a, b in zip(frames[:-1], frames[1:]))


# ---------------------------------------------------------------- pure maths

def test_tile_images_matches_a_block_layout():
    images = numpy.arange(5 * 4, dtype=numpy.float32).reshape(5, 2, 2)
    tiled = figures.tile_images(images, 2, 3, pad=1, fill=-1.0)
    gap = numpy.full((2, 1), -1.0)
    empty = numpy.full((2, 2), -1.0)
    row0 = numpy.hstack([images[0], gap, images[1], gap, images[2]])
    row1 = numpy.hstack([images[3], gap, images[4], gap, empty])
    expected = numpy.vstack([row0, numpy.full((1, 8), -1.0), row1])
    numpy.testing.assert_array_equal(tiled, expected)


def test_tile_images_takes_flat_mnist_images_and_checks_the_fit():
    flat = numpy.random.RandomState(0).rand(4, 784)
    tiled = figures.tile_images(flat, 2, 2)
    assert tiled.shape == (56, 56)
    numpy.testing.assert_array_equal(tiled[28:, :28], flat[2].reshape(28, 28))
    with pytest.raises(ValueError, match='do not fit'):
        figures.tile_images(flat, 1, 3)
    with pytest.raises(ValueError, match='784'):
        figures.tile_images(numpy.zeros((2, 100)), 1, 2)
    with pytest.raises(ValueError, match='784'):
        figures.reconstruction_grid(numpy.zeros((2, 100)),
                                    numpy.zeros((2, 100)))


def test_latent_grid_puts_plus_z2_at_the_top_row():
    n, lo, hi = 5, -2.0, 2.0
    grid = figures.latent_grid(n, (lo, hi)).reshape(n, n, 2)  # (row, col, z)
    values = numpy.linspace(lo, hi, n)
    for r in range(n):
        for c in range(n):
            numpy.testing.assert_allclose(grid[r, c],
                                          [values[c], values[n - 1 - r]])
    assert (grid[0, :, 1] == hi).all() and (grid[-1, :, 1] == lo).all()
    assert (grid[:, 0, 0] == lo).all() and (grid[:, -1, 0] == hi).all()


def test_interpolate_is_the_straight_line_between_the_ends():
    a, b = numpy.array([1.0, -2.0, 0.5]), numpy.array([3.0, 2.0, -0.5])
    z = figures.interpolate(a, b, 81)
    assert z.shape == (81, 3) and z.dtype == numpy.float32
    numpy.testing.assert_allclose(z[0], a)
    numpy.testing.assert_allclose(z[-1], b)
    numpy.testing.assert_allclose(z[40], (a + b) / 2, rtol=1e-6)
    numpy.testing.assert_allclose(z[20], 0.75 * a + 0.25 * b, rtol=1e-6)


def test_there_and_back_plays_forty_values_forward_then_back():
    t = figures.there_and_back(40)
    assert t.shape == (80,)
    numpy.testing.assert_allclose(t[:40], numpy.linspace(0, 1, 40))
    numpy.testing.assert_allclose(t[40:], t[:40][::-1])


def test_all_pairs_latents_interpolates_every_ordered_pair():
    z_ends = numpy.random.RandomState(1).randn(10, 4)
    ts = figures.there_and_back(5)
    z = figures.all_pairs_latents(z_ends, ts)
    assert z.shape == (10, 10, 10, 4)
    for i, j in [(0, 7), (7, 0), (3, 3), (9, 2)]:
        path = figures.interpolate(z_ends[i], z_ends[j], 5)  # (5, 4)
        numpy.testing.assert_allclose(z[:5, i, j], path, rtol=1e-5)
        numpy.testing.assert_allclose(z[5:, i, j], path[::-1], rtol=1e-5)


def test_class_means_and_first_of_each_class():
    rng = numpy.random.RandomState(2)
    points, labels = rng.randn(200, 2), rng.randint(0, 10, 200)
    classes, means = figures.class_means(points, labels)
    assert classes.tolist() == sorted(set(labels.tolist()))
    for c, mean in zip(classes, means):
        members = [p for p, label in zip(points, labels) if label == c]
        numpy.testing.assert_allclose(mean, sum(members) / len(members))
    first = figures.first_of_each_class(labels, range(10))
    assert first.tolist() == [labels.tolist().index(c) for c in range(10)]
    with pytest.raises(ValueError, match='no example of class 3'):
        figures.first_of_each_class(numpy.array([0, 1, 2]), [3])


def test_quantize_keeps_levels_evenly_spaced():
    ramp = numpy.arange(256, dtype=numpy.uint8)
    q = figure_files.quantize(ramp, 32)
    assert len(numpy.unique(q)) == 32
    assert q[0] == 0 and q[-1] == 255
    assert numpy.abs(q.astype(int) - ramp).max() <= 255 / 31 / 2 + 0.5


def test_uint8_and_upscale():
    image = numpy.array([[0.0, 0.5], [1.2, -0.1]])
    numpy.testing.assert_array_equal(figures.to_uint8(image),
                                     [[0, 128], [255, 0]])
    big = figures.upscale(numpy.array([[1, 2], [3, 4]]), 3)
    numpy.testing.assert_array_equal(big, numpy.kron([[1, 2], [3, 4]],
                                                     numpy.ones((3, 3))))


@pytest.mark.numerics
def test_unroll_swiss_roll_recovers_the_generating_coordinates():
    from sklearn.datasets import make_swiss_roll
    points, t = make_swiss_roll(200, noise=0.0, random_state=0)
    coords = plot_swiss_roll.unroll_swiss_roll(t, points)
    numpy.testing.assert_allclose(coords[:, 0], t)
    numpy.testing.assert_allclose(points[:, 0], t * numpy.cos(t))
    numpy.testing.assert_allclose(points[:, 2], t * numpy.sin(t))
    numpy.testing.assert_allclose(coords[:, 1], points[:, 1])


# ------------------------------------------------------------------ figures

def image_data(ax):
    return numpy.asarray(ax.images[0].get_array())


@pytest.mark.numerics
def test_reconstruction_grid_pairs_inputs_with_reconstructions(model2d,
                                                               encoded):
    x = encoded[0][:10]
    x_rec = inference.reconstruct(model2d, x)
    fig = figures.reconstruction_grid(x, x_rec)
    axes = fig.axes
    assert len(axes) == 20
    assert all(len(ax.images) == 1 for ax in axes)
    for k in range(10):
        numpy.testing.assert_array_equal(image_data(axes[2 * k]),
                                         x[k].reshape(28, 28))
        numpy.testing.assert_array_equal(image_data(axes[2 * k + 1]),
                                         x_rec[k].reshape(28, 28))
    assert [ax.get_title() for ax in axes[:2]] == ['input', 'output']
    with pytest.raises(ValueError, match='differ in shape'):
        figures.reconstruction_grid(x, x_rec[:9])


def test_latent_scatter_colours_by_label_and_writes_digits_at_means(encoded):
    _, labels, mu = encoded
    fig = figures.latent_scatter(mu, labels)
    ax, colorbar = fig.axes  # the scatter and its colorbar
    (points,) = ax.collections
    numpy.testing.assert_allclose(points.get_offsets(), mu)
    numpy.testing.assert_array_equal(points.get_array(), labels)
    assert points.get_alpha() == 0.6
    assert points.get_cmap().name == 'rainbow'
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert sorted(texts) == [str(c) for c in range(10)]
    numpy.testing.assert_allclose(texts['7'], mu[labels == 7].mean(axis=0),
                                  rtol=1e-5)
    assert not [t for t in ax.texts if isinstance(t, Annotation)]


def test_latent_scatter_arrow_runs_between_the_class_means(encoded):
    _, labels, mu = encoded
    fig = figures.latent_scatter(mu, labels, arrow=(0, 7))
    (arrow,) = [t for t in fig.axes[0].texts if isinstance(t, Annotation)]
    assert arrow.arrow_patch is not None
    numpy.testing.assert_allclose(arrow.xyann, mu[labels == 0].mean(axis=0),
                                  rtol=1e-5)
    numpy.testing.assert_allclose(arrow.xy, mu[labels == 7].mean(axis=0),
                                  rtol=1e-5)
    with pytest.raises(ValueError, match='2-D latent'):
        figures.latent_scatter(numpy.zeros((5, 3)), numpy.arange(5))
    with pytest.raises(ValueError, match='class'):
        figures.latent_scatter(mu[labels < 5], labels[labels < 5],
                               arrow=(0, 7))


@pytest.mark.numerics
def test_latent_map_centres_each_tile_on_its_z():
    n, extent = 5, (-2.0, 2.0)
    z = figures.latent_grid(n, extent)  # (25, 2)
    # each tile is a flat gray that encodes its z2, so the drawn image says
    # where each z landed
    tiles = numpy.repeat(((z[:, 1] + 2) / 4)[:, None], 784, axis=1)
    path = numpy.array([[-1.5, -1.0], [0.5, 1.5]])
    fig = figures.latent_map(tiles, extent, trajectory=path)
    (ax,) = fig.axes
    image = image_data(ax)
    assert image.shape == (n * 28, n * 28)
    assert (image[:28] == 1.0).all()  # top row of tiles: z2 = +2
    assert (image[-28:] == 0.0).all()  # bottom row: z2 = -2
    left, right, bottom, top = ax.images[0].get_extent()
    for k, (z1, z2) in enumerate(z):
        r, c = divmod(k, n)
        x = left + (c + 0.5) * (right - left) / n
        y = top - (r + 0.5) * (top - bottom) / n
        numpy.testing.assert_allclose([x, y], [z1, z2], atol=1e-6)
    (line,) = ax.lines
    assert line.get_color() == 'red'
    numpy.testing.assert_allclose(line.get_xydata(), path)
    with pytest.raises(ValueError, match='n\\*n'):
        figures.latent_map(tiles[:24])


@pytest.mark.numerics
def test_frame_sheet_titles_each_frame_with_its_t(model2d, encoded):
    _, labels, mu = encoded
    z_start, z_end = mu[figures.first_of_each_class(labels, (0, 7))]
    frames = inference.decode(model2d, figures.interpolate(z_start, z_end,
                                                           81))
    ts = numpy.linspace(0, 1, 81)
    fig = figures.frame_sheet(frames, ts)
    assert len(fig.axes) == 81
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == 't = 0' and titles[1] == 't = 0.0125'
    assert titles[40] == 't = 0.5' and titles[-1] == 't = 1'
    assert all(len(ax.images) == 1 for ax in fig.axes)
    numpy.testing.assert_array_equal(image_data(fig.axes[80]),
                                     frames[80].reshape(28, 28))
    # 9 x 9: the tenth frame opens the second row
    assert fig.axes[9].get_subplotspec().rowspan.start == 1
    assert fig.axes[9].get_subplotspec().colspan.start == 0


@pytest.mark.numerics
def test_prior_samples_is_one_grid_image(model2d):
    z = numpy.random.RandomState(0).standard_normal((100, 2))
    images = inference.decode(model2d, z)
    fig = figures.prior_samples(images)
    (ax,) = fig.axes
    image = image_data(ax)
    assert image.shape == (10 * 28 + 9 * 2,) * 2
    numpy.testing.assert_array_equal(image[30:58, :28],
                                     images[10].reshape(28, 28))


def test_tsne_scatter_and_embedding(encoded):
    _, labels, mu = encoded
    embedding = figures.tsne_embedding(mu[:100], seed=0)
    assert embedding.shape == (100, 2) and numpy.isfinite(embedding).all()
    fig = figures.tsne_scatter(embedding, labels[:100])
    ax, colorbar = fig.axes
    numpy.testing.assert_allclose(ax.collections[0].get_offsets(), embedding)
    assert ax.collections[0].get_cmap().name == 'rainbow'
    assert '100 test images' in ax.get_title()


def test_projector_files_load_back(tmp_path, encoded):
    _, labels, mu = encoded
    vectors, metadata = figure_files.write_projector_tsv(mu, labels,
                                                    tmp_path / 'projector')
    back = numpy.loadtxt(vectors, delimiter='\t')
    numpy.testing.assert_allclose(back, mu, rtol=1e-5, atol=1e-6)
    lines = open(metadata).read().splitlines()
    assert lines == [str(label) for label in labels]  # no header row
    config = (tmp_path / 'projector' / 'projector_config.pbtxt').read_text()
    assert 'tensor_path: "vectors.tsv"' in config
    assert 'metadata_path: "metadata.tsv"' in config
    with pytest.raises(ValueError, match='labels'):
        figure_files.write_projector_tsv(mu, labels[:-1], tmp_path)


def test_loss_curves_draws_each_logged_key():
    log = [{'epoch': 1, 'main/loss': 200.0, 'validation/main/loss': 190.0},
           {'epoch': 2, 'main/loss': 150.0, 'validation/main/loss': 160.0}]
    (ax,) = figures.loss_curves(log).axes
    assert len(ax.lines) == 2
    numpy.testing.assert_allclose(ax.lines[0].get_xydata(),
                                  [[1, 200.0], [2, 150.0]])


def test_swiss_roll_unrolled_figure():
    from sklearn.datasets import make_swiss_roll
    points, t = make_swiss_roll(100, noise=0.05, random_state=0)
    coords = plot_swiss_roll.unroll_swiss_roll(t, points)
    (ax,) = plot_swiss_roll.swiss_roll_unrolled(coords, t).axes
    numpy.testing.assert_allclose(ax.collections[0].get_offsets(), coords)


def test_swiss_roll_frames_turn_the_view():
    from sklearn.datasets import make_swiss_roll
    points, t = make_swiss_roll(100, noise=0.05, random_state=0)
    frames = list(plot_swiss_roll.swiss_roll_frames(points, t, n_frames=3, step=90,
                                            size=(2, 2), dpi=50))
    assert [f.shape for f in frames] == [(100, 100, 3)] * 3
    assert frames[0].dtype == numpy.uint8
    assert not numpy.array_equal(frames[0], frames[1])


# -------------------------------------------------------------------- GIFs

@pytest.mark.numerics
def test_interpolation_gif_has_81_frames_of_112_pixels(tmp_path, model2d,
                                                       encoded):
    _, labels, mu = encoded
    z_start, z_end = mu[figures.first_of_each_class(labels, (0, 7))]
    decodes = inference.decode(model2d, figures.interpolate(z_start, z_end,
                                                            81))
    frames = figure_files.interpolation_frames(decodes, scale=4)
    assert frames.shape == (81, 112, 112) and frames.dtype == numpy.uint8
    numpy.testing.assert_array_equal(
        frames[0, ::4, ::4], figures.to_uint8(decodes[0].reshape(28, 28)))
    path = tmp_path / 'vae_0to7_dim_2.gif'
    figure_files.interpolation_gif(decodes, path, scale=4)
    n_stored, total_ms, size = gif_timeline(path)
    assert size == (112, 112)
    assert total_ms == 81 * figure_files.FRAME_MS
    assert n_stored == stored_frames(frames)
    assert os.listdir(tmp_path) == ['vae_0to7_dim_2.gif']  # no temp left


@pytest.mark.numerics
def test_all_pairs_gif_plays_80_frames_of_10x10_montages(tmp_path, model2d,
                                                         encoded):
    _, labels, mu = encoded
    z = figures.all_pairs_latents(
        mu[figures.first_of_each_class(labels)], figures.there_and_back(40))
    decodes = inference.decode(model2d, z.reshape(-1, 2)).reshape(
        80, 10, 10, 784)  # (T, start, end, pixels)
    montage = figure_files.all_pairs_montage(decodes[0], pad=2)
    side = 10 * 28 + 9 * 2
    assert montage.shape == (side, side) and montage.dtype == numpy.uint8
    # row 3 starts at the first test 3: at t = 0 every cell of it shows it
    first3 = figures.to_uint8(decodes[0, 3, 0].reshape(28, 28))
    cell = montage[3 * 30:3 * 30 + 28, 8 * 30:8 * 30 + 28]
    numpy.testing.assert_array_equal(cell, first3)
    path = tmp_path / 'vae_all_9to9.gif'
    figure_files.all_pairs_gif(decodes, path, scale=2, pad=2)
    n_stored, total_ms, size = gif_timeline(path)
    assert size == (2 * side, 2 * side)
    assert total_ms == 80 * figure_files.FRAME_MS
    # t = 1 is played twice at the turn, which the file stores as one
    # frame shown twice as long
    montages = [figure_files.all_pairs_montage(f) for f in decodes]
    assert n_stored == stored_frames(montages) == 79

