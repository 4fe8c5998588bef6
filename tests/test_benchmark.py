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
    assert [line[:2] for line in lines if line[0] == '50'] == [
        ['50', 'plain'], ['50', 'fast']]

    (result,) = json.loads(path.read_text())
    assert result['flops_per_sample'] == 7100000
    assert result['square_gflops'] > 0
    rows = result['rows']
    assert [(r['batch'], r['path']) for r in rows] == [
        (50, 'plain'), (50, 'fast')]
    for r in rows:
        assert r['samples_per_s'] > 0 and r['s_per_epoch'] > 0
        assert r['s_per_epoch'] == pytest.approx(
            60000 / r['samples_per_s'])
        assert r["fraction_of_step_gemm"] > 0  # no upper bound: load skews it
        assert r['fraction_of_square_gemm'] > 0
        # the article's network alone is 1.3 M parameters (5 MB)
        assert 5e6 < r['peak_memory_bytes'] < 1e9
