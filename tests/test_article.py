"""The article's numbers on the real MNIST (needs ``$VAE_TEST_MNIST_DIR``).

Every other test runs on the synthetic MNIST of ``synthetic_mnist.py``; these
check that the project reproduces the published run itself.
"""
import pytest

from testutil import ROOT, command, read_log

train_script = command('train')

# The article's logged epoch 1 (REFERENCE: train 171.64, test 136.44). The
# project's runs draw other random numbers than the article's notebook (its
# own epoch 1 is 170.99 / 136.00), so the bound is the spread of such runs,
# not of rounding.
ARTICLE_EPOCH_1 = {'main/loss': 171.64, 'validation/main/loss': 136.44}
BOUND = 1.5


@pytest.mark.slow
@pytest.mark.numerics
def test_first_epoch_of_the_article_run(tmp_path, real_mnist_dir):
    out = tmp_path / 'article_z20'
    assert train_script.main([
        '--config', str(ROOT / 'configs' / 'article_z20.json'), '-e', '1',
        '--data-dir', real_mnist_dir, '-o', str(out), '--no-progress']) == 0
    entry, = read_log(out)
    for key, published in ARTICLE_EPOCH_1.items():
        assert abs(entry[key] - published) < BOUND, (key, entry[key])
