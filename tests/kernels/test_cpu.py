"""The fused loss (vae/kernels/fused.py) and the flat Adam
(vae/kernels/adam.py) against the plain path: the same numbers, bit for bit.

The fused loss node and the flat Adam repeat Chainer's CPU arithmetic
operation for operation, so these tests compare with exact equality; a
tolerance would hide a reordered sum.
"""
import functools
import re
import types

import chainer
import numpy
import pytest

from testutil import interrupt_at, params_of, read_log, train_small
from vae.kernels import adam, fused
from vae.model import VAE
from vae.train.model_files import load_model

pytestmark = pytest.mark.numerics  # every test here compares numbers

#: A training run of these tests into ``out``: 784-64-64-3 on the --test
#: subset; its exit status.
run = functools.partial(train_small, n_hidden=64, n_latent=3)


def small_model(activation='softplus', sizes=(30, 3, 16), seed=1):
    numpy.random.seed(seed)
    return VAE(sizes[0], sizes[1], sizes[2], activation)


def images(batch, n_in, seed=2):
    return numpy.random.RandomState(seed).rand(batch, n_in).astype(
        numpy.float32)


def observe(model, lf, x):
    """``lf(x)`` and what it reported (with the graph kept)."""
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    observation = {}
    with reporter.scope(observation), \
            chainer.using_config('keep_graph_on_report', True):
        loss = lf(x)
    return loss, observation


def loss_and_grads(model, lf, x, seed=5):
    """Loss value, reports and every parameter gradient of ``lf(x)``."""
    numpy.random.seed(seed)
    model.cleargrads()
    loss, observation = observe(model, lf, x)
    loss.backward()
    reports = {key.split('/')[-1]: float(value.array)
               for key, value in observation.items()}
    grads = {name: param.grad.copy() for name, param in model.namedparams()}
    return float(loss.array), reports, grads, numpy.random.get_state()[1]


def assert_same(a, b):
    for name in a:
        numpy.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize('activation', list(fused.KERNELS))
@pytest.mark.parametrize('k,C', [(1, 1.0), (3, 1.0), (1, 0.3), (4, 2.5)])
def test_fused_loss_and_gradients_equal_the_plain_path(activation, k, C):
    model = small_model(activation)
    x = images(7, 30)
    plain = loss_and_grads(model, model.get_loss_func(C=C, k=k), x)
    one_node = loss_and_grads(
        model, model.get_loss_func(C=C, k=k, fused=True), x)
    assert one_node[0] == plain[0]
    assert one_node[1] == plain[1]  # loss, reconstr, kl as reported
    assert set(one_node[1]) == {'loss', 'reconstr', 'kl'}
    assert_same(plain[2], one_node[2])
    # the same noise was drawn: the generator is in the same state after
    numpy.testing.assert_array_equal(plain[3], one_node[3])


def test_article_network_at_batch_100_is_bit_identical():
    model = small_model('softplus', (784, 20, 500))
    x = images(100, 784)
    plain = loss_and_grads(model, model.get_loss_func(), x)
    one_node = loss_and_grads(model, fused.loss_func(model), x)
    assert one_node[:2] == plain[:2]
    assert_same(plain[2], one_node[2])


@pytest.mark.parametrize('term', ['reconstr', 'kl'])
def test_gradients_of_each_reported_term(term):
    # backprop from one reported part alone, as from the plain Variables
    model = small_model('tanh')
    x = images(5, 30)
    grads = []
    for lf in (model.get_loss_func(C=0.7, k=2),
               fused.loss_func(model, C=0.7, k=2)):
        numpy.random.seed(3)
        model.cleargrads()
        observe(model, lf, x)[1]['main/' + term].backward()
        # a term that does not reach a parameter leaves it None (plain) or
        # zero (fused), which Adam treats alike
        grads.append({name: numpy.zeros_like(p.array) if p.grad is None
                      else p.grad.copy() for name, p in model.namedparams()})
    assert_same(*grads)


def test_evaluation_mode_gives_the_same_loss():
    model = small_model()
    x = images(6, 30)
    values = []
    for lf in (model.get_loss_func(k=10), fused.loss_func(model, k=10)):
        numpy.random.seed(0)
        with chainer.no_backprop_mode(), chainer.using_config('train', False):
            values.append(float(lf(x).array))
    assert values[0] == values[1]


def test_gradients_are_views_of_one_flat_array_in_name_order():
    model = small_model()
    model.cleargrads()  # as the updater does: no stale gradient to add to
    fused.loss_func(model)(images(4, 30)).backward()
    names = adam.param_names(model)
    params = dict(model.namedparams())
    base = params[names[0]].grad.base
    assert base is not None and base.size == sum(p.size for p in
                                                 model.params())
    offset = 0
    for name in names:
        grad = params[name].grad
        assert grad.base is base, name
        assert numpy.shares_memory(grad, base[offset:offset + grad.size])
        offset += grad.size


def test_data_gets_no_gradient():
    model = small_model()
    x = chainer.Variable(images(4, 30))
    fused.loss_func(model)(x).backward()
    assert x.grad is None


def test_what_the_fused_loss_does_not_support():
    with pytest.raises(ValueError, match="activations softplus, tanh, "
                       "sigmoid, relu, not 'elu'"):
        fused.loss_func(small_model('elu'))
    with pytest.raises(ValueError, match='k must be a positive integer'):
        small_model().get_loss_func(k=0, fused=True)
    with pytest.raises(ValueError, match='k must be a positive integer'):
        fused.loss_func(small_model(), k=1.5)
    model = small_model()
    assert fused.unsupported_reason(model) is None
    assert fused.unsupported_reason(model, chainer.get_device('@numpy')) \
        is None
    gpu = types.SimpleNamespace(xp=object())  # any device but NumPy
    assert 'CPU only' in fused.unsupported_reason(model, gpu)
    for param in model.params():
        param.array = param.array.astype(numpy.float64)
    assert 'float32' in fused.unsupported_reason(model)


# -- FlatAdam --------------------------------------------------------------

def train_steps(optimizer, lf_of, steps=4, hooks=()):
    """The model and optimizer after ``steps`` updates on random data."""
    model = small_model(seed=0)
    optimizer.setup(model)
    for hook in hooks:
        optimizer.add_hook(hook)
    lf = lf_of(model)
    data = images(6 * steps, 30, seed=4)
    numpy.random.seed(7)
    for i in range(steps):
        optimizer.update(lf, data[6 * i:6 * (i + 1)])
    return model, optimizer


def state_of(model, optimizer):
    """Copies of the parameters and of every piece of Adam's state."""
    out = {'param' + name: p.array.copy() for name, p in model.namedparams()}
    for name, p in model.namedparams():
        for key, value in p.update_rule.state.items():
            out[key + name] = value.copy()
        out['t' + name] = numpy.array(p.update_rule.t)
    out['t'] = numpy.array(optimizer.t)
    return out


@pytest.mark.parametrize('one_node', [False, True], ids=['plain-loss',
                                                         'fused-loss'])
def test_flat_adam_equals_chainer_adam(one_node):
    def lf_of(model):
        return fused.loss_func(model, k=2) if one_node else \
            model.get_loss_func(k=2)
    expected = state_of(*train_steps(chainer.optimizers.Adam(alpha=3e-3),
                                     lf_of))
    got = state_of(*train_steps(adam.FlatAdam(alpha=3e-3), lf_of))
    assert sorted(got) == sorted(expected)
    assert_same(expected, got)


def test_flat_adam_takes_its_own_path(monkeypatch):
    def fallback(*args, **kwargs):
        raise AssertionError('FlatAdam fell back to per-parameter updates')
    monkeypatch.setattr(chainer.optimizer.GradientMethod, 'update', fallback)
    train_steps(adam.FlatAdam(), fused.loss_func)
    train_steps(adam.FlatAdam(), VAE.get_loss_func)


@pytest.mark.parametrize('settings,hooks', [
    (dict(amsgrad=True), ()), (dict(weight_decay_rate=1e-2), ()),
    (dict(eta=0.5), ()),
    ({}, (chainer.optimizer_hooks.GradientClipping(0.05),))],
    ids=['amsgrad', 'weight-decay', 'eta', 'hook'])
def test_flat_adam_falls_back_or_agrees_beyond_the_defaults(settings, hooks):
    results = [state_of(*train_steps(cls(alpha=3e-3, **settings),
                                     VAE.get_loss_func, hooks=hooks))
               for cls in (chainer.optimizers.Adam, adam.FlatAdam)]
    assert_same(*results)


def test_flat_adam_keeps_working_when_arrays_are_replaced():
    # Deserializers and device moves may put new arrays in place of the
    # views; FlatAdam copies them back into its buffers.
    expected = state_of(*train_steps(chainer.optimizers.Adam(),
                                     VAE.get_loss_func, steps=6))
    model, optimizer = train_steps(adam.FlatAdam(), VAE.get_loss_func,
                                   steps=3)
    for param in model.params():
        param.array = param.array.copy()
        state = param.update_rule.state
        for key in state:
            state[key] = state[key].copy()
    # steps 4 to 6 as train_steps takes them (the noise stream goes on)
    lf = model.get_loss_func()
    data = images(36, 30, seed=4)
    for i in range(3, 6):
        optimizer.update(lf, data[6 * i:6 * (i + 1)])
    assert_same(expected, state_of(model, optimizer))


def test_flat_adam_snapshots_load_into_chainer_adam_and_back(tmp_path):
    model, optimizer = train_steps(adam.FlatAdam(), VAE.get_loss_func)
    path = str(tmp_path / 'flat.npz')
    chainer.serializers.save_npz(path, optimizer)
    expected = state_of(model, optimizer)

    plain = chainer.optimizers.Adam()
    plain.setup(small_model())
    for name, param in plain.target.namedparams():
        param.array[...] = dict(model.namedparams())[name].array
    chainer.serializers.load_npz(path, plain)
    assert_same(expected, state_of(plain.target, plain))

    chainer.serializers.save_npz(path, plain)
    again = adam.FlatAdam()
    again.setup(plain.target.copy(mode='copy'))
    chainer.serializers.load_npz(path, again)
    assert_same(expected, state_of(again.target, again))

    # and both go on alike
    x = images(6, 30, seed=8)
    for optimizer in (plain, again):
        numpy.random.seed(9)
        optimizer.update(optimizer.target.get_loss_func(), x)
    assert_same(state_of(plain.target, plain), state_of(again.target, again))


# -- training through the train command ------------------------------------

def test_fast_training_run_equals_the_plain_one(tmp_path, mnist_dir):
    run(tmp_path / 'plain', mnist_dir, '-e', '2', '--no-fast')
    run(tmp_path / 'fast', mnist_dir, '-e', '2', '--fast')
    assert_same(params_of(load_model(tmp_path / 'plain' / 'model.npz')),
                params_of(load_model(tmp_path / 'fast' / 'model.npz')))
    log = read_log(tmp_path / 'fast', times=False)
    assert log == read_log(tmp_path / 'plain', times=False)
    assert [e['epoch'] for e in log] == [1, 2]
    assert log[1]['main/loss'] < log[0]['main/loss']
    # network.png is the article's graph of Chainer's functions either way
    # (node ids are object ids, so compare the labels)
    def labels(run_dir):
        return sorted(re.findall(r'label="([^"]*)"',
                                 (run_dir / 'cg.dot').read_text()))
    assert labels(tmp_path / 'fast') == labels(tmp_path / 'plain')
    assert labels(tmp_path / 'fast').count('LinearFunction') == 7


def test_a_plain_run_resumed_on_the_fast_path_equals_an_uninterrupted_one(
        tmp_path, mnist_dir, monkeypatch):
    # the snapshot of one path continues on the other, exactly
    straight = tmp_path / 'straight'
    run(straight, mnist_dir, '-e', '3')

    resumed = tmp_path / 'resumed'
    interrupt_at(monkeypatch, 25)  # in epoch 3: 10 iterations an epoch
    with pytest.raises(SystemExit, match='stopped by Ctrl-C'):
        run(resumed, mnist_dir, '-e', '3', '--no-fast')
    monkeypatch.undo()
    assert (resumed / 'snapshot_epoch_2').exists()
    run(resumed, mnist_dir, '-e', '3', '--fast')

    assert_same(params_of(load_model(straight / 'model.npz')),
                params_of(load_model(resumed / 'model.npz')))
    assert read_log(straight, times=False) == read_log(
        resumed, times=False)


def test_non_finite_loss_stops_the_fast_path(tmp_path, mnist_dir,
                                             monkeypatch):
    original = fused.VAELoss.forward
    calls = {'train': 0}

    def nan_at_iteration_5(self, inputs):
        outputs = original(self, inputs)
        if self._k == 1:  # training calls (evaluation uses k_test = 10)
            calls['train'] += 1
            if calls['train'] == 5:
                return tuple(numpy.full_like(o, numpy.nan) for o in outputs)
        return outputs

    monkeypatch.setattr(fused.VAELoss, 'forward', nan_at_iteration_5)
    out = tmp_path / 'run'
    with pytest.raises(SystemExit, match=r'non-finite loss.*iteration 5 '):
        run(out, mnist_dir, '-e', '1', '--fast')
    assert not (out / 'model.npz').exists()


def test_unsupported_models_train_on_the_plain_path(tmp_path, mnist_dir,
                                                    capsys):
    out = tmp_path / 'elu'
    assert run(out, mnist_dir, '-e', '1', '--fast', '--activation',
               'elu') == 0
    assert "not 'elu'; training on the plain path" in capsys.readouterr().err
    graph = (out / 'cg.dot').read_text()
    assert 'label="LinearFunction"' in graph
    assert graph.startswith('digraph graphname{label="The reference graph')


def test_the_paths_run_the_models_own_loss():
    from vae.train import trainer
    cpu = chainer.get_device('@numpy')
    x = images(4, 30)
    for fast, node in ((True, fused.VAELoss), (False, None)):
        model = small_model()
        path = trainer.training_path(model, cpu, 1e-3, fast=fast)
        assert path.name == ('fast' if fast else 'plain')
        loss = path.make_loss_func(C=1.0, k=1)(x)
        # the fast path: get_loss_func(fused=True), one VAELoss node
        assert isinstance(loss.creator, fused.VAELoss) == bool(node)
        assert isinstance(path.optimizer, adam.FlatAdam) == fast
