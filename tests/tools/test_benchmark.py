"""scripts/benchmark.py: its FLOP count, its GEMM list and a --quick run.

No timing is asserted (the machine's load varies); the numbers only have to
be sane.
"""
import json

import numpy
import pytest

from testutil import load_script

benchmark = load_script('benchmark')


def test_flops_of_the_article_network():
    # forward 2 * (784*500 + 500*500 + 2*500*20 + 20*500 + 500*500 +
    # 500*784) = 2.628 M; backward twice that minus the first layer's
    # input gradient (2 * 784 * 500)
    assert benchmark.flops_per_sample(n_in=784, n_latent=20,
                                      n_h=500) == 7100000
    assert benchmark.flops_per_sample(**benchmark.SIZES) * 60000 == 426e9


@pytest.mark.parametrize('k', [1, 3])
def test_flops_count_every_product_once(k):
    n_in, n_h, n_latent = 7, 5, 2
    encoder = n_in * n_h + n_h * n_h + 2 * n_h * n_latent
    decoder = n_latent * n_h + n_h * n_h + n_h * n_in
    forward = 2 * (encoder + k * decoder)
    assert benchmark.flops_per_sample(n_in, n_latent, n_h, k) == (
        3 * forward - 2 * n_in * n_h)


def test_step_gemms_are_the_counted_products(monkeypatch):
    flops = []
    original = numpy.ndarray.dot

    class Counting(numpy.ndarray):
        def dot(self, other):
            flops.append(2 * self.shape[0] * self.shape[1] * other.shape[1])
            return original(self, other)

    class CountingNumpy(object):
        def asarray(self, a):
            return a.view(Counting)

    run = benchmark.step_gemms(CountingNumpy(), 4, n_in=7, n_latent=2, n_h=5,
                               k=3)
    run()
    assert len(flops) == 3 * 7 - 1
    assert sum(flops) == 4 * benchmark.flops_per_sample(7, 2, 5, k=3)


def test_quick_run_prints_a_sane_table(tmp_path, capsys):
    path = tmp_path / 'bench.json'
    assert benchmark.main(['--quick', '--json', str(path)]) == 0
    printed = capsys.readouterr().out
    assert 'samples/s' in printed and 'of GEMM' in printed
    assert 'float32 512^3 GEMM' in printed
    lines = [line.split() for line in printed.splitlines()]
    # the PyTorch twin where PyTorch is installed (the torch extra)
    paths = ['plain', 'fast'] + (['pytorch'] if benchmark.import_torch()
                                 else [])
    assert [line[:2] for line in lines if line[0] == '50'] == [
        ['50', path] for path in paths]

    (result,) = json.loads(path.read_text())
    assert result['flops_per_sample'] == 7100000
    assert result['square_gflops'] > 0
    rows = result['rows']
    assert [(r['batch'], r['path']) for r in rows] == [
        (50, path) for path in paths]
    for r in rows[:2]:
        assert r['samples_per_s'] > 0 and r['s_per_epoch'] > 0
        assert r['s_per_epoch'] == pytest.approx(
            60000 / r['samples_per_s'])
        assert r["fraction_of_step_gemm"] > 0  # no upper bound: load skews it
        assert r['fraction_of_square_gemm'] > 0
        # the article's network alone is 1.3 M parameters (5 MB)
        assert 5e6 < r['peak_memory_bytes'] < 1e9


def test_quick_run_names_the_blas_and_splits_the_step(tmp_path, capsys):
    path = tmp_path / 'bench.json'
    assert benchmark.main(['--quick', '--no-torch', '--json', str(path)]) == 0
    printed = capsys.readouterr().out
    (result,) = json.loads(path.read_text())
    (blas,) = result['blas'][:1]
    assert 'BLAS: ' in printed and '%s kernel' % blas['architecture'] in printed
    assert blas['version'] in printed
    assert 'pytorch' not in [r['path'] for r in result['rows']]
    split = result['split']
    assert split['batch'] == 50 and split['k_test'] == 10
    # the parts add up to the step: two of them are differences
    assert split['products_s'] + split['elementwise_s'] + split['adam_s'] \
        + split['machinery_s'] == pytest.approx(split['step_s'])
    assert split['products_s'] > 0 and split['adam_s'] > 0
    assert split['test_loss_s_per_epoch'] > 0
    assert 'default_run_s' not in split  # batch 50 is not the default's
    assert 'matrix products (the same shapes, alone)' in printed
    assert 'test loss each epoch (10000 images, k = 10)' in printed


def test_the_split_and_the_ratio_in_words():
    split = {'batch': 100, 'step_s': 0.010, 'products_s': 0.006,
             'elementwise_s': 0.002, 'adam_s': 0.001, 'machinery_s': 0.001,
             'train_s_per_epoch': 6.0, 'test_loss_s_per_epoch': 1.5,
             'k_test': 10, 'default_run_s': 750.0, 'default_epochs': 100}
    text = benchmark.format_split(split)
    assert 'a fast step at batch 100: 10.00 ms' in text
    assert ' 60 %' in text and '1.50 s, beside 6.00 s of training' in text
    assert 'configs/default.json (100 epochs): about 12 min' in text
    rows = [{'batch': 100, 'path': path, 's_per_step': step}
            for path, step in [('plain', 0.02), ('fast', 0.01),
                               ('pytorch', 0.012)]]
    assert benchmark.torch_ratios(rows) == [
        'batch 100: fast path at 1.20x the speed of PyTorch (6.00 vs '
        '7.20 s/epoch; 1.2x would be 6.00 s/epoch)']
    assert benchmark.torch_ratios(rows[:2]) == []


def test_the_pytorch_twin_computes_the_same_loss():
    torch = pytest.importorskip('torch')
    from vae.model import VAE
    import chainer
    data = numpy.random.RandomState(0).rand(8, 784).astype(numpy.float32)
    twin = benchmark.TorchSteps(torch, 4, data)
    numpy.random.seed(0)
    model = VAE(act_func=benchmark.ACTIVATION, **benchmark.SIZES)
    with torch.no_grad():
        for name, layer in twin.layers.items():
            link = getattr(model, name)
            layer.weight.copy_(torch.from_numpy(link.W.array))
            layer.bias.copy_(torch.from_numpy(link.b.array))
    eps = numpy.random.RandomState(1).standard_normal(
        (8, benchmark.SIZES['n_latent'])).astype(numpy.float32)
    mu, ln_var = model.encode(data)
    z = mu + chainer.functions.exp(ln_var * 0.5) * eps
    expected = (chainer.functions.bernoulli_nll(
        data, model.decode(z, sigmoid=False))
        + chainer.functions.gaussian_kl_divergence(mu, ln_var)) / 8
    got = twin.loss(torch.from_numpy(data), torch.from_numpy(eps)).item()
    assert got == pytest.approx(float(expected.array), rel=1e-5)
    assert twin.step() > 0


def test_the_host_cost_of_a_graph_iteration_is_one_launch(capsys):
    # the updater's Python around one replay, timed with a stand-in GPU
    # whose graph launches do nothing
    from testutil import load_script
    benchmark = load_script('benchmark')
    cost = benchmark.graph_host_cost(iterations=20, rounds=2)
    assert cost['launches'] == 1
    assert 0 < cost['s_per_iteration'] < 1e-3
    assert benchmark.main(['--host-cost', '--quick']) == 0
    assert 'graph path, host work per iteration: ' in capsys.readouterr().out
