"""The plot_latent and plot_swiss_roll commands end to end, through their
main(argv).

Tiny models (VAE(784, 2, 16) and VAE(784, 3, 16)) are trained here for a few
steps on real MNIST images and saved with save_model; the commands' main()
then makes every figure from the model file alone.
"""
import json
import os

import numpy
import pytest
from PIL import Image

from testutil import (BAD_MODEL_FILES, N_TRAIN, assert_one_line_error,
                      command, gif_timeline, run_main, train_tiny)
# one_openmp_thread is an autouse fixture: importing it applies it here
from testutil import one_openmp_thread  # NOQA: F401
from vae.train.model_files import save_model

plot_latent = command('plot_latent')
plot_swiss_roll = command('plot_swiss_roll')

FAST = ['--tsne-samples', '100', '--no-progress']
ALL_2D = ['compare_reconstruction.png', 'scatter.png',
          'scatter_with_arrow.png', '2dim_map.png', 'vae_0to7_dim_2.gif',
          'interpolation_sheet.png',
          'vae_all_9to9.gif', 'tsne.png', 'prior_samples.png', 'loss.png']
PROJECTOR = ['metadata.tsv', 'projector_config.pbtxt', 'vectors.tsv']


def saved_model(directory, mnist, n_latent):
    train, _ = mnist
    path = directory / 'model.npz'
    save_model(path, train_tiny(train.images[:N_TRAIN], n_latent))
    return path


@pytest.fixture(scope='module')
def run2d(tmp_path_factory, mnist, mnist_dir):
    """Every figure of a 2-D model, with a training log beside the model."""
    directory = tmp_path_factory.mktemp('z2')
    model = saved_model(directory, mnist, 2)
    log = [{'epoch': e, 'main/loss': 200.0 - e, 'validation/main/loss':
            190.0 - e} for e in (1, 2, 3)]
    (directory / 'log').write_text(json.dumps(log))
    rc, printed = run_main(plot_latent, ['--model', str(model), '--data-dir',
                                         mnist_dir] + FAST)
    return rc, printed, directory / 'figures'


@pytest.fixture(scope='module')
def model3d(tmp_path_factory, mnist):
    return saved_model(tmp_path_factory.mktemp('z3'), mnist, 3)


def test_2d_model_makes_every_figure(run2d):
    rc, printed, out = run2d
    assert rc == 0
    assert sorted(os.listdir(out)) == sorted(ALL_2D + ['projector'])
    assert sorted(os.listdir(out / 'projector')) == PROJECTOR
    for name in ALL_2D:
        assert 'wrote %s' % (out / name) in printed
    assert 'skipped' not in printed


def test_2d_model_gifs_and_projector(run2d):
    _, _, out = run2d
    assert gif_timeline(out / 'vae_0to7_dim_2.gif')[1:] == (8100, (112, 112))
    assert gif_timeline(out / 'vae_all_9to9.gif')[1:] == (8000, (298, 298))
    vectors = numpy.loadtxt(out / 'projector' / 'vectors.tsv')
    assert vectors.shape == (10000, 2)  # all test images, not the t-SNE subset
    with Image.open(out / '2dim_map.png') as im:
        assert im.size == (800, 800)


def test_3d_model_skips_the_2d_figures_and_says_why(model3d, mnist_dir):
    out = model3d.parent / 'figs'
    rc, printed = run_main(plot_latent, [
        '--model', str(model3d), '--data-dir', mnist_dir, '--out', str(out)]
        + FAST)
    assert rc == 0
    assert ('skipped scatter, scatter-arrow, map: they plot z itself, which '
            'needs a 2-D latent, and this model has 3 dimensions') in printed
    assert 'skipped loss.png: no training log' in printed
    assert sorted(os.listdir(out)) == sorted([
        'compare_reconstruction.png', 'vae_0to7_dim_3.gif',
        'interpolation_sheet.png', 'vae_all_9to9.gif', 'tsne.png',
        'prior_samples.png', 'projector'])
    vectors = numpy.loadtxt(out / 'projector' / 'vectors.tsv')
    assert vectors.shape == (10000, 3)


def test_only_start_and_end_name_the_interpolation(model3d, mnist_dir):
    out = model3d.parent / 'only'
    rc, printed = run_main(plot_latent, [
        '--model', str(model3d), '--data-dir', mnist_dir, '--out', str(out),
        '--only', 'interpolation', 'map', '--start', '3', '--end', '8',
        '--no-progress'])
    assert rc == 0
    assert 'skipped map:' in printed
    assert sorted(os.listdir(out)) == ['interpolation_sheet.png',
                                       'vae_3to8_dim_3.gif']


def test_only_the_test_split_is_read(model3d, mnist_dir, tmp_path):
    import shutil
    for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
        shutil.copy(os.path.join(mnist_dir, name), tmp_path)
    rc, _ = run_main(plot_latent, [
        '--model', str(model3d), '--data-dir', str(tmp_path), '--out',
        str(tmp_path / 'figs'), '--only', 'reconstruction', '--no-progress'])
    assert rc == 0
    assert os.listdir(tmp_path / 'figs') == ['compare_reconstruction.png']


def test_prior_and_loss_need_no_mnist(model3d, tmp_path):
    out = tmp_path / 'prior'
    rc, _ = run_main(plot_latent, [
        '--model', str(model3d), '--data-dir', str(tmp_path / 'nowhere'),
        '--out', str(out), '--only', 'prior', '--no-progress'])
    assert rc == 0 and os.listdir(out) == ['prior_samples.png']


def test_bad_digit_is_refused_by_the_parser(model3d, capsys):
    with pytest.raises(SystemExit) as e:
        plot_latent.main(['--model', str(model3d), '--start', '10'])
    assert e.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err


@pytest.mark.parametrize('make, message', BAD_MODEL_FILES)
def test_bad_model_file_is_a_one_line_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as e:
        plot_latent.main(['--model', str(path), '--no-progress'])
    assert_one_line_error(e, message)
    assert not (tmp_path / 'figures').exists()


def test_swiss_roll_script_writes_both_figures(tmp_path):
    rc, printed = run_main(plot_swiss_roll, ['--out', str(tmp_path),
                                             '--no-progress'])
    assert rc == 0
    assert sorted(os.listdir(tmp_path)) == ['2D_swiss_roll.png',
                                            'swiss_roll.gif']
    assert gif_timeline(tmp_path / 'swiss_roll.gif') == (36, 3600, (360, 360))
    assert 'wrote %s' % (tmp_path / 'swiss_roll.gif') in printed
