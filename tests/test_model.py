"""The article's model and loss against closed forms and independent NumPy."""
import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check

from vae import VAE, Xavier
from vae.model import xavier_bound

pytestmark = pytest.mark.numerics  # every test here compares numbers


def softplus(a):
    return numpy.logaddexp(0.0, a)


def numpy_forward(model, x, eps_list, C):
    """The negative ELBO computed with NumPy from the model's weights.

    Independent of Chainer's functions: the MLP, the reparameterization
    z = mu + exp(ln_var / 2) * eps, the Bernoulli NLL with logits
    -[x log s(y) + (1 - x) log(1 - s(y))] = softplus(y) - x y, and the
    closed-form KL 0.5 (mu^2 + sigma^2 - ln sigma^2 - 1).
    """
    p = {name.strip('/'): param.array.astype(numpy.float64)
         for name, param in model.namedparams()}
    act = softplus if model.act_func is F.softplus else numpy.tanh

    def lin(name, h):
        return h @ p[name + '/W'].T + p[name + '/b']

    x = x.astype(numpy.float64)
    h = act(lin('le2', act(lin('le1', x))))
    mu, ln_var = lin('le3_mu', h), lin('le3_ln_var', h)
    rec = 0.0
    for eps in eps_list:
        z = mu + numpy.exp(ln_var / 2) * eps
        y = lin('ld3', act(lin('ld2', act(lin('ld1', z)))))
        rec += numpy.sum(softplus(y) - x * y)
    batch = len(x)
    rec /= len(eps_list) * batch
    kl = 0.5 * numpy.sum(mu ** 2 + numpy.exp(ln_var) - ln_var - 1) / batch
    return rec + C * kl, rec, kl


# -- Xavier ----------------------------------------------------------------

@pytest.mark.parametrize('fan_in,fan_out,constant', [
    (784, 500, 1), (500, 20, 1), (20, 500, 2.5), (3, 7, 0.5)])
def test_xavier_bound_and_variance(fan_in, fan_out, constant):
    numpy.random.seed(0)
    w = numpy.empty((400, 500), dtype=numpy.float32)
    Xavier(fan_in, fan_out, constant)(w)
    bound = constant * numpy.sqrt(6.0 / (fan_in + fan_out))
    assert xavier_bound(fan_in, fan_out, constant) == pytest.approx(bound)
    assert numpy.abs(w).max() <= bound
    assert numpy.abs(w).max() > 0.99 * bound  # the whole range is used
    # Var of U(-a, a) is a^2 / 3 = constant^2 * 2 / (fan_in + fan_out)
    expected = constant ** 2 * 2.0 / (fan_in + fan_out)
    assert w.var() == pytest.approx(expected, rel=0.02)
    assert abs(w.mean()) < 0.01 * bound


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32,
                                   numpy.float64])
def test_xavier_dtype(dtype):
    init = Xavier(10, 20, dtype=dtype)
    w = numpy.zeros((20, 10), dtype=dtype)
    init(w)
    assert w.dtype == dtype and numpy.any(w != 0)
    link = chainer.links.Linear(10, 20, initialW=init)
    assert link.W.dtype == dtype
    with pytest.raises(ValueError, match='dtype'):
        Xavier(10, 20, dtype=numpy.float32)(numpy.zeros(3, numpy.float64))


def test_xavier_rejects_bad_fans():
    with pytest.raises(ValueError, match='fan_in'):
        Xavier(0, 3)


def test_links_are_xavier_initialized_with_zero_biases():
    numpy.random.seed(1)
    model = VAE(784, 20, 500)
    expected = {'le1': (500, 784), 'le2': (500, 500), 'le3_mu': (20, 500),
                'le3_ln_var': (20, 500), 'ld1': (500, 20),
                'ld2': (500, 500), 'ld3': (784, 500)}
    assert {link.name for link in model.children()} == set(expected)
    for name, (n_out, n_in) in expected.items():
        link = getattr(model, name)
        assert link.W.shape == (n_out, n_in)
        assert numpy.abs(link.W.array).max() <= xavier_bound(n_in, n_out)
        assert numpy.all(link.b.array == 0)


# -- shapes and the decoder --------------------------------------------------

@pytest.mark.parametrize('n_in,n_latent,n_h,batch', [
    (784, 20, 500, 3), (784, 2, 16, 1), (10, 3, 5, 7)])
def test_encode_decode_shapes(n_in, n_latent, n_h, batch):
    model = VAE(n_in, n_latent, n_h)
    x = numpy.random.rand(batch, n_in).astype(numpy.float32)
    mu, ln_var = model.encode(x)
    assert mu.shape == ln_var.shape == (batch, n_latent)
    assert model.decode(mu).shape == (batch, n_in)
    assert model(x).shape == (batch, n_in)


def test_decode_sigmoid_flag():
    model = VAE(12, 3, 8, act_func=F.softplus)
    z = numpy.random.randn(5, 3).astype(numpy.float32)
    logits = model.decode(z, sigmoid=False).array
    probs = model.decode(z).array
    numpy.testing.assert_allclose(probs, 1 / (1 + numpy.exp(-logits)),
                                  rtol=1e-5)
    assert logits.min() < 0 or logits.max() > 1  # logits, not probabilities
    x = numpy.random.rand(5, 12).astype(numpy.float32)
    mu, _ = model.encode(x)
    # exact: __call__ runs the very operations of encode, then decode
    numpy.testing.assert_array_equal(model(x).array, model.decode(mu).array)
    numpy.testing.assert_array_equal(model(x, sigmoid=False).array,
                                     model.decode(mu, sigmoid=False).array)


def test_activation_by_name_and_errors():
    assert VAE(4, 2, 3, 'softplus').act_func is F.softplus
    assert VAE(4, 2, 3).activation == 'tanh'
    with pytest.raises(ValueError, match='unknown activation'):
        VAE(4, 2, 3, 'swish-ish')
    with pytest.raises(ValueError, match='n_latent'):
        VAE(4, 0, 3)


# -- the loss ----------------------------------------------------------------

@pytest.mark.parametrize('k,C,act', [(1, 1.0, F.softplus), (3, 1.0, F.tanh),
                                     (4, 0.3, F.softplus), (1, 2.5, F.tanh)])
def test_loss_equals_numpy_reference(k, C, act):
    numpy.random.seed(3)
    model = VAE(30, 4, 16, act_func=act)
    for param in model.params():  # biases away from zero, too
        param.array[...] += 0.1 * numpy.random.randn(*param.shape)
    x = numpy.random.rand(6, 30).astype(numpy.float32)

    numpy.random.seed(42)
    eps = [numpy.random.standard_normal((6, 4)) for _ in range(k)]
    expected, rec, kl = numpy_forward(model, x, eps, C)

    numpy.random.seed(42)  # F.gaussian draws the same noise
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    observation = {}
    with reporter.scope(observation):
        loss = model.get_loss_func(C=C, k=k)(x)
    assert float(loss.array) == pytest.approx(expected, rel=1e-4)
    for key, value in (('loss', expected), ('reconstr', rec), ('kl', kl)):
        assert float(observation['main/' + key].array) == pytest.approx(
            value, rel=1e-4)


def test_loss_rejects_bad_k():
    with pytest.raises(ValueError, match='k must be'):
        VAE(4, 2, 3).get_loss_func(k=0)


def test_gaussian_kl_closed_form_against_monte_carlo():
    """KL(N(mu, s^2) || N(0, 1)) = E_q[log q(z) - log p(z)], estimated."""
    rng = numpy.random.RandomState(0)
    mu = numpy.array([[0.5, -1.0, 2.0]], numpy.float32)
    ln_var = numpy.array([[0.0, -1.5, 0.7]], numpy.float32)
    closed = F.gaussian_kl_divergence(mu, ln_var, reduce='no').array
    z = mu + numpy.exp(ln_var / 2) * rng.standard_normal((400000, 3))
    log_q = -0.5 * (numpy.log(2 * numpy.pi) + ln_var
                    + (z - mu) ** 2 / numpy.exp(ln_var))
    log_p = -0.5 * (numpy.log(2 * numpy.pi) + z ** 2)
    numpy.testing.assert_allclose(closed[0], (log_q - log_p).mean(0),
                                  atol=0.01)


def test_reparameterized_samples_have_mean_mu_and_variance_exp_ln_var():
    numpy.random.seed(5)
    n = 200000
    mu = numpy.tile(numpy.array([1.5, -0.5, 0.0], numpy.float32), (n, 1))
    ln_var = numpy.tile(numpy.array([0.0, -2.0, 1.2], numpy.float32), (n, 1))
    z = F.gaussian(mu, ln_var).array
    numpy.testing.assert_allclose(z.mean(0), mu[0], atol=0.01)
    numpy.testing.assert_allclose(z.var(0), numpy.exp(ln_var[0]), rtol=0.02)


def test_numerical_gradient_through_the_loss():
    numpy.random.seed(7)
    model = VAE(6, 2, 4, act_func=F.softplus)
    for param in model.params():
        param.array = param.array.astype(numpy.float64)
    x = numpy.random.rand(3, 6)
    eps = numpy.random.standard_normal((3, 2))
    params = tuple(model.params())

    def loss_with_fixed_noise(x):
        mu, ln_var = model.encode(x)
        z = F.gaussian(mu, ln_var, eps=eps)
        rec = F.bernoulli_nll(x, model.decode(z, sigmoid=False)) / len(x)
        return rec + F.gaussian_kl_divergence(mu, ln_var) / len(x)

    gradient_check.check_backward(
        loss_with_fixed_noise, x, None, params=params, eps=1e-4,
        atol=1e-5, rtol=1e-4, dtype=numpy.float64)
