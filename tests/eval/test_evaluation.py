"""vae/eval/estimators.py against closed forms, SciPy and exact quadrature.

For a VAE with a 1-D (or 2-D) latent, log p(x) = log int p(x|z) p(z) dz is
computed here by the trapezoid rule on a fine grid of z, in float64 with the
model's weights and NumPy only (none of the code under test), and the
importance-sampled estimate of Burda et al. (2015) is checked against it
with tolerances taken from its own Monte Carlo error.
"""
import json
import math

import chainer
import numpy
import pytest
from scipy import special, stats

from testutil import gpu_available, command
from vae import device as device_lib
from vae.eval import estimators
from vae.model import VAE
from vae.train.model_files import save_model

evaluate_script = command('evaluate')

N_IN = 16



# ---------------------------------------------------------------- fixtures

def _toy_data(n_latent, n, rng):
    """Binary images of N_IN pixels generated from an n_latent-D code."""
    a = rng.normal(0, 2, (n_latent, N_IN))
    b = rng.normal(0, 1, N_IN)

    def sample(count):
        t = rng.normal(size=(count, n_latent))  # (count, n_latent)
        p = special.expit(t @ a + b)  # (count, N_IN)
        return (rng.random_sample(p.shape) < p).astype(numpy.float32)
    return sample(n), sample(8)


def _trained_model(n_latent, seed=0, steps=300):
    """A small softplus VAE fitted for a few Adam steps to toy data."""
    rng = numpy.random.RandomState(seed)
    numpy.random.seed(seed)
    train, evaluation_images = _toy_data(n_latent, 500, rng)
    model = VAE(N_IN, n_latent, 8, 'softplus')
    optimizer = chainer.optimizers.Adam(alpha=0.01)
    optimizer.setup(model)
    lf = model.get_loss_func()
    for _ in range(steps):
        batch = train[rng.randint(0, len(train), 50)]
        optimizer.update(lf, batch)
    # Widen q to sigma = 1.2 > 1, the prior's. The trained q is narrower
    # (sigma ~ 0.35) than the posterior's tails, which follow the prior where
    # the likelihood flattens; its importance weights then have infinite
    # variance, and about one seed in twenty puts the K-sample estimate
    # ten standard errors off. With q wider than the prior the weights are
    # bounded, and Monte Carlo tolerances mean what they say.
    model.le3_ln_var.W.array[...] = 0
    model.le3_ln_var.b.array[...] = 2 * math.log(1.2)  # log(sigma**2)
    return model, evaluation_images


@pytest.fixture(scope='module')
def model_1d():
    return _trained_model(1)


@pytest.fixture(scope='module')
def model_2d():
    return _trained_model(2, steps=200)


# ------------------------------------------------- independent references

def _np_log_joint(model, x, z):
    """log p(x|z) + log p(z) in float64 NumPy, straight from the weights.

    Args:
        x: (B, D) images; z: (G, L) grid points.

    Returns:
        (G, B) array.
    """
    h = z
    for link in (model.ld1, model.ld2):
        h = numpy.logaddexp(0, h @ link.W.array.astype(numpy.float64).T
                            + link.b.array)  # softplus
    logits = (h @ model.ld3.W.array.astype(numpy.float64).T
              + model.ld3.b.array)  # (G, D)
    x = x.astype(numpy.float64)
    log_px_z = (x[None] * special.log_expit(logits[:, None])
                + (1 - x[None]) * special.log_expit(-logits[:, None])
                ).sum(-1)  # (G, B)
    return log_px_z + stats.norm.logpdf(z).sum(-1)[:, None]


def _grid(n_latent, points, half_width):
    """Grid points (G, L) and log trapezoid weights (G,) on a cube."""
    axis = numpy.linspace(-half_width, half_width, points)
    w = numpy.full(points, axis[1] - axis[0])
    w[[0, -1]] /= 2
    mesh = numpy.meshgrid(*[axis] * n_latent, indexing='ij')
    z = numpy.stack([m.ravel() for m in mesh], axis=-1)  # (G, L)
    log_w = sum(numpy.log(m.ravel()) for m in
                numpy.meshgrid(*[w] * n_latent, indexing='ij'))  # (G,)
    return z, log_w


def exact_log_px(model, x, points, half_width=10.0):
    """log p(x) per image by the trapezoid rule on a grid of z."""
    z, log_w = _grid(model.n_latent, points, half_width)
    return special.logsumexp(_np_log_joint(model, x, z) + log_w[:, None],
                             axis=0)  # (B,)


def exact_elbo(model, x, points=4001, half_width=10.0):
    """E_q[log p(x|z) + log p(z) - log q(z|x)] per image, 1-D latent, and
    the standard deviation of log p(x|z) under q (for Monte Carlo errors).
    """
    mu, ln_var = (a.array.astype(numpy.float64)[:, 0] for a in model.encode(x))
    sigma = numpy.exp(0.5 * ln_var)
    z, log_w = _grid(1, points, half_width)
    log_q = stats.norm.logpdf(z, mu, sigma)  # (G, B)
    q_w = numpy.exp(log_q + log_w[:, None])  # (G, B) quadrature weights
    log_joint = _np_log_joint(model, x, z)  # (G, B)
    log_prior = stats.norm.logpdf(z)  # (G, 1)
    log_px_z = log_joint - log_prior
    mean = (q_w * log_px_z).sum(0)
    sd = numpy.sqrt((q_w * (log_px_z - mean) ** 2).sum(0))
    return (q_w * (log_joint - log_q)).sum(0), sd


def _iw_relative_sd(model, x, K, seed):
    """Delta-method standard deviation of the K-sample estimate per image:
    sqrt(Var[w] / E[w]**2 / K), from K fresh weights."""
    numpy.random.seed(seed)
    mu, ln_var = (a.array for a in model.encode(x))
    log_w = estimators.log_importance_weights(model, x, mu, ln_var, K)
    w = numpy.exp(log_w - special.logsumexp(log_w, axis=0))  # (K, B), sums 1
    relative_var = K * (w ** 2).sum(0) - 1
    return numpy.sqrt(relative_var / K)


# ------------------------------------------------------- pure functions

@pytest.mark.numerics
def test_log_bernoulli_matches_scipy_for_binary_and_continuous_x():
    rng = numpy.random.RandomState(0)
    logits = rng.normal(0, 5, (3, 4, 30))
    x = (rng.random_sample((4, 30)) < 0.5).astype(numpy.float64)
    expected = stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)
    got = estimators.log_bernoulli(x, logits)
    assert got.shape == (3, 4)
    numpy.testing.assert_allclose(got, expected, rtol=1e-10)
    # Confident mistakes cost |logit| nats, with no overflow (where the
    # sigmoid rounds to 0 or 1 and scipy gives -inf).
    assert estimators.log_bernoulli(numpy.array([0.0, 1.0]),
                                    numpy.array([800.0, -800.0])) == -1600.0
    # Continuous pixels, as the article's loss scores them: minus the
    # binary cross-entropy.
    x = rng.random_sample((4, 30))
    expected = (x * special.log_expit(logits)
                + (1 - x) * special.log_expit(-logits)).sum(-1)
    numpy.testing.assert_allclose(estimators.log_bernoulli(x, logits),
                                  expected, rtol=1e-12)
    # and -bernoulli_nll, which the training loss uses, per row
    nll = chainer.functions.bernoulli_nll(
        x[None].repeat(3, 0).reshape(12, 30), logits.reshape(12, 30),
        reduce='no').array.sum(-1)
    numpy.testing.assert_allclose(estimators.log_bernoulli(x, logits),
                                  -nll.reshape(3, 4), rtol=1e-12)


@pytest.mark.numerics
def test_gaussian_log_densities_match_scipy():
    rng = numpy.random.RandomState(1)
    z = rng.normal(size=(5, 3))
    mu = rng.normal(size=3)
    ln_var = rng.normal(size=3)
    expected = stats.multivariate_normal(
        mu, numpy.diag(numpy.exp(ln_var))).logpdf(z)
    numpy.testing.assert_allclose(
        estimators.log_normal_diag(z, mu, ln_var), expected, rtol=1e-12)
    numpy.testing.assert_allclose(
        estimators.log_standard_normal(z),
        stats.multivariate_normal(numpy.zeros(3)).logpdf(z), rtol=1e-12)


@pytest.mark.numerics
def test_kl_standard_normal_matches_quadrature_and_chainer():
    mu = numpy.array([[0.3, -1.5]])
    ln_var = numpy.array([[-2.0, 0.7]])
    kl = estimators.kl_standard_normal(mu, ln_var)
    sigma = numpy.exp(0.5 * ln_var[0])
    by_quadrature = sum(
        stats.norm(m, s).expect(
            lambda z, m=m, s=s: stats.norm.logpdf(z, m, s)
            - stats.norm.logpdf(z))
        for m, s in zip(mu[0], sigma))
    assert kl.shape == (1,)
    assert kl[0] == pytest.approx(by_quadrature, rel=1e-8)
    assert kl[0] == pytest.approx(float(
        chainer.functions.gaussian_kl_divergence(mu, ln_var).array),
        rel=1e-12)


def test_active_units_counts_dimensions_by_variance():
    signs = numpy.tile([-1.0, 1.0], 50)  # mean 0, variance 1
    # per-dimension variance: 0, 0.005, 0.02, 1 (the variance of a * signs
    # is a**2 exactly)
    mu = numpy.stack([0 * signs + 3, 0.005 ** 0.5 * signs,
                      0.02 ** 0.5 * signs, signs], axis=1)  # (100, 4)
    assert estimators.active_units(mu) == 2
    assert estimators.active_units(mu, threshold=0.001) == 3
    assert estimators.active_units(mu, threshold=2.0) == 0
    assert estimators.active_units(mu.astype(numpy.float32)) == 2


# ------------------------------------------------------------------ ELBO

@pytest.mark.numerics
def test_elbo_equals_the_training_loss_with_the_same_noise(model_1d):
    model, _ = model_1d
    x = numpy.random.RandomState(5).random_sample((20, N_IN)).astype(
        numpy.float32)
    numpy.random.seed(3)
    got = estimators.elbo(model, x, k=4, batchsize=len(x))
    numpy.random.seed(3)
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    observation = {}
    with reporter.scope(observation):
        loss = model.get_loss_func(C=1.0, k=4)(x)
    assert got['loss'] == pytest.approx(float(loss.array), rel=1e-5)
    assert got['reconstr'] == pytest.approx(
        float(observation['main/reconstr'].array), rel=1e-5)
    assert got['kl'] == pytest.approx(
        float(observation['main/kl'].array), rel=1e-5)
    # Other noise gives another value: the agreement above is not trivial.
    numpy.random.seed(4)
    other = estimators.elbo(model, x, k=4, batchsize=len(x))
    assert abs(other['reconstr'] - got['reconstr']) > 1e-3
    # The KL part is exact, so it does not depend on the batching (7+7+6).
    assert estimators.elbo(model, x, k=1, batchsize=7)['kl'] == \
        pytest.approx(got['kl'], rel=1e-6)


@pytest.mark.numerics
def test_elbo_converges_to_the_exact_elbo(model_1d):
    model, x = model_1d
    exact, sd = exact_elbo(model, x)
    k = 5000
    numpy.random.seed(0)
    got = estimators.elbo(model, x, k=k)
    # The KL part is in closed form; the reconstruction is a mean of
    # k * N independent draws.
    standard_error = math.sqrt((sd ** 2).mean() / (k * len(x)))
    assert -got['loss'] == pytest.approx(exact.mean(),
                                         abs=5 * standard_error + 1e-4)
    assert standard_error < 0.05


# ----------------------------------------------------- importance sampling

@pytest.mark.numerics
def test_quadrature_reference_has_converged(model_1d, model_2d):
    model, x = model_1d
    numpy.testing.assert_allclose(exact_log_px(model, x, 4001),
                                  exact_log_px(model, x, 2001), atol=1e-8)
    model, x = model_2d
    numpy.testing.assert_allclose(exact_log_px(model, x[:4], 301, 8.0),
                                  exact_log_px(model, x[:4], 201, 8.0),
                                  atol=1e-6)


def test_log_likelihood_converges_to_quadrature_1d(model_1d):
    model, x = model_1d
    exact = exact_log_px(model, x, 4001)
    K = 20000
    numpy.random.seed(0)
    got = estimators.log_likelihood(model, x, K=K, chunk=2500,
                                    progress=False)
    sd = _iw_relative_sd(model, x, K, seed=1)
    assert got.shape == (len(x),) and got.dtype == numpy.float64
    # 5 standard deviations of the estimate, plus float32 decoding
    numpy.testing.assert_array_less(numpy.abs(got - exact), 5 * sd + 1e-3)
    assert sd.max() < 0.05  # the tolerance is tight enough to mean something


def test_log_likelihood_converges_to_quadrature_2d(model_2d):
    model, x = model_2d
    x = x[:4]
    exact = exact_log_px(model, x, 301, 8.0)
    K = 20000
    numpy.random.seed(0)
    got = estimators.log_likelihood(model, x, K=K, chunk=5000,
                                    progress=False)
    sd = _iw_relative_sd(model, x, K, seed=1)
    numpy.testing.assert_array_less(numpy.abs(got - exact), 5 * sd + 1e-3)
    assert sd.max() < 0.05


@pytest.mark.numerics
def test_estimates_rise_with_K_from_the_elbo_to_log_p(model_1d):
    """ELBO <= E[IW_K] <= E[IW_K'] <= log p(x) for K < K' (Burda et al.,
    Theorem 1), on averages over many independent estimates."""
    model, x = model_1d
    exact = exact_log_px(model, x, 4001).mean()
    elbo_exact = exact_elbo(model, x)[0].mean()
    repeats = 400
    x_rep = numpy.tile(x, (repeats, 1))  # (repeats * 8, D)
    means, errors = [], []
    numpy.random.seed(0)
    for K in (1, 5, 50):
        est = estimators.log_likelihood(model, x_rep, K=K, progress=False)
        # one mean per repeat over the 8 images: independent replicates
        per_repeat = est.reshape(repeats, len(x)).mean(1)
        means.append(per_repeat.mean())
        errors.append(per_repeat.std(ddof=1) / math.sqrt(repeats))
    # K = 1 is an unbiased estimate of the ELBO.
    assert means[0] == pytest.approx(elbo_exact, abs=4 * errors[0])
    for (lo, lo_err), (hi, hi_err) in zip(zip(means, errors),
                                          zip(means[1:], errors[1:])):
        assert hi - lo > 4 * math.hypot(lo_err, hi_err)
    assert means[-1] <= exact + 4 * errors[-1]
    # The bound is not loose by construction: the gap is real and shrinks.
    assert exact - elbo_exact > exact - means[-1]


@pytest.mark.numerics
def test_log_likelihood_is_the_log_mean_exp_of_the_weights(model_1d):
    model, x = model_1d
    numpy.random.seed(7)
    got = estimators.log_likelihood(model, x, K=300, chunk=300,
                                    progress=False)
    numpy.random.seed(7)
    mu, ln_var = (a.array for a in model.encode(x))
    log_w = estimators.log_importance_weights(model, x, mu, ln_var, 300)
    assert log_w.shape == (300, len(x)) and log_w.dtype == numpy.float64
    numpy.testing.assert_allclose(
        got, special.logsumexp(log_w, axis=0) - math.log(300), rtol=1e-12)
    # Jensen, sample by sample: the K-sample bound beats the mean log weight.
    assert (got > log_w.mean(0)).all()


@pytest.mark.numerics
def test_chunked_and_unchunked_estimates_agree(model_1d):
    model, x = model_1d
    results = []
    for chunk in (500, 37, 1):
        numpy.random.seed(11)
        results.append(estimators.log_likelihood(
            model, x, K=500, chunk=chunk, batchsize=5, progress=False))
    # The same noise, but products of other shapes: BLAS blocks a product by
    # its shape and kernel, so the float32 log-weights may differ in their
    # last bit (they did under OPENBLAS_CORETYPE=Haswell); relative 1e-6 is
    # float32's rounding with room, far below the 1e-2 the estimates differ
    # by between seeds.
    numpy.testing.assert_allclose(results[1], results[0], rtol=1e-6)
    numpy.testing.assert_allclose(results[2], results[0], rtol=1e-6)
    numpy.random.seed(12)
    other = estimators.log_likelihood(model, x, K=500, batchsize=5,
                                      progress=False)
    assert not numpy.array_equal(other, results[0])


def test_bad_sample_counts_are_refused(model_1d):
    model, x = model_1d
    with pytest.raises(ValueError, match='K must be a positive integer'):
        estimators.log_likelihood(model, x, K=0, progress=False)
    with pytest.raises(ValueError, match='k must be a positive integer'):
        estimators.elbo(model, x, k=0)
    with pytest.raises(ValueError, match='no inputs'):
        estimators.elbo(model, x[:0])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason='needs CuPy and a CUDA GPU')
def test_gpu_estimates_agree_with_the_cpu(model_1d):
    import cupy
    model, x = model_1d
    gpu = model.copy(mode='copy')
    gpu.to_device('@cupy:0')
    device_lib.seed(device_lib.get_device(0), 0)
    got = estimators.log_likelihood(gpu, cupy.asarray(x), K=20000,
                                    chunk=5000, progress=False)
    sd = _iw_relative_sd(model, x, 20000, seed=1)
    numpy.testing.assert_array_less(
        numpy.abs(got - exact_log_px(model, x, 4001)), 5 * sd + 1e-3)
    result = estimators.evaluate(gpu, x, k=5, iw_samples=10, progress=False)
    assert result['active_units'] == estimators.active_units(
        model.encode(x)[0].array)


# ---------------------------------------------------------------- script

@pytest.mark.numerics
def test_script_prints_a_table_and_writes_json(tmp_path, mnist_dir, mnist,
                                               capsys):
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    save_model(tmp_path / 'model.npz', model)
    argv = ['--model', str(tmp_path / 'model.npz'), '--data-dir', mnist_dir,
            '--limit', '50', '--iw-samples', '20', '--k', '3', '--seed', '5',
            '--no-progress']
    assert evaluate_script.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['split', 'N', 'k', '-ELBO', 'reconstr', 'KL',
                                'IW', 'K', '-log', 'p(x)', 'active', 'units']
    cells = lines[1].split()
    with open(tmp_path / 'evaluation_test.json') as f:
        result = json.load(f)
    assert cells == ['test', '50', '3', '%.2f' % result['neg_elbo'],
                     '%.2f' % result['reconstr'], '%.2f' % result['kl'],
                     '20', '%.2f' % result['neg_log_likelihood'],
                     '%d/2' % result['active_units']]
    assert (result['split'], result['n'], result['k'], result['iw_samples'],
            result['seed'], result['binarize']) == ('test', 50, 3, 20, 5,
                                                    None)
    # The script's numbers are the library's on the same images and seed.
    numpy.random.seed(5)
    expected = estimators.evaluate(model, mnist[1].images[:50], k=3,
                                   iw_samples=20, progress=False)
    for key in ('neg_elbo', 'reconstr', 'kl', 'neg_log_likelihood',
                'neg_log_likelihood_sem', 'active_units'):
        assert result[key] == expected[key], key
    assert result['neg_elbo'] == pytest.approx(
        result['reconstr'] + result['kl'])
    # an untrained decoder scores about 784 log 2 = 543 nats per image
    assert 300 < result['neg_elbo'] < 800


def test_script_skips_the_iw_estimate_and_honours_out(tmp_path, mnist_dir,
                                                      capsys):
    save_model(tmp_path / 'model.npz', VAE(784, 2, 8))
    out = tmp_path / 'sub' / 'train.json'
    assert evaluate_script.main([
        '--model', str(tmp_path / 'model.npz'), '--data-dir', mnist_dir,
        '--split', 'train', '--limit', '10', '--iw-samples', '0',
        '--binarize', 'threshold', '--out', str(out), '--no-progress']) == 0
    cells = capsys.readouterr().out.splitlines()[1].split()
    assert cells[0] == 'train' and cells[1] == '10' and cells[7] == '-'
    with open(out) as f:
        result = json.load(f)
    assert result['neg_log_likelihood'] is None
    assert result['split'] == 'train' and result['binarize'] == 'threshold'
    assert not (tmp_path / 'evaluation_train.json').exists()


def test_script_reports_a_bad_model_file_in_one_line(tmp_path):
    bad = tmp_path / 'model.npz'
    bad.write_bytes(b'not a zip file')
    with pytest.raises(SystemExit) as e:
        evaluate_script.main(['--model', str(bad), '--no-progress'])
    message = str(e.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'not a readable .npz model file' in message
    with pytest.raises(SystemExit) as e:
        evaluate_script.main(['--model', str(tmp_path / 'missing.npz')])
    assert str(e.value.code).startswith('error: model file not found')


def test_script_reports_missing_mnist_in_one_line(tmp_path):
    save_model(tmp_path / 'model.npz', VAE(784, 2, 8))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit) as e:
        evaluate_script.main(['--model', str(tmp_path / 'model.npz'),
                              '--data-dir', str(tmp_path / 'empty'),
                              '--no-progress'])
    assert str(e.value.code).startswith('error: ')
    assert not (tmp_path / 'evaluation_test.json').exists()


def test_out_may_name_a_folder(tmp_path, mnist_dir):
    evaluate_script = command('evaluate')
    path = tmp_path / 'model.npz'
    save_model(path, VAE(784, 2, 8))
    folder = tmp_path / 'results'
    folder.mkdir()
    assert evaluate_script.main([
        '--model', str(path), '--data-dir', mnist_dir, '--limit', '20',
        '--iw-samples', '0', '--out', str(folder), '--no-progress']) == 0
    assert (folder / 'evaluation_test.json').exists()


def test_evaluate_encodes_the_data_once(model_1d, monkeypatch):
    model, x = model_1d
    batches = []
    original = model.encode

    def counted(xb):
        batches.append(len(xb))
        return original(xb)

    monkeypatch.setattr(model, 'encode', counted)
    x = numpy.resize(x, (250, x.shape[1]))  # (250, D), the images repeated
    result = estimators.evaluate(model, x, k=2, iw_samples=3,
                                 batchsize=100, progress=False)
    assert batches == [100, 100, 50]
    assert result['n'] == 250
