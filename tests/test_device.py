"""The lines that only a GPU runs, run on the CPU through a stand-in.

``tests/standin.py`` stands in for a GPU and CuPy where they differ from the
CPU (not a context manager, a random generator of their own that no
snapshot holds, arrays that must be moved). Every function of
``vae/device.py`` and every caller that moves data to or from a device
(training, snapshots, evaluation, figures, the benchmark) runs here on it;
the results are compared with the CPU's, which the stand-in's NumPy
arithmetic makes exact.
"""
import json

import numpy
import pytest

from standin import PHILOX, DeviceArray, stand_in_gpu
from testutil import (command, interrupt_at, load_script, params_of, read_log,
                      tiny_config)
from vae import device as device_lib
from vae.eval import estimators
from vae.eval import inference
from vae.train import trainer
from vae.model import VAE
from vae.train.model_files import load_model, save_model


@pytest.fixture
def gpu(monkeypatch):
    with stand_in_gpu(monkeypatch) as device:
        yield device


@pytest.fixture
def images(small_mnist):
    return small_mnist


def test_a_device_is_not_a_context_manager(gpu):
    # the line that broke the first GPU run: `with device:`
    with pytest.raises(RuntimeError, match='chainer.using_device'):
        with gpu:
            pass


def test_seed_installs_a_philox_generator_apart_from_numpys(gpu):
    device_lib.seed(gpu, 5)
    state = gpu.xp.random.get_random_state()
    assert state.method == PHILOX
    first = gpu.xp.random.standard_normal((4,), dtype=numpy.float32)
    device_lib.seed(gpu, 5)
    numpy.random.seed(99)  # NumPy's seed does not move the device's
    again = gpu.xp.random.standard_normal((4,), dtype=numpy.float32)
    numpy.testing.assert_array_equal(first, again)
    assert gpu.xp.current == []  # made current only while seeding


def test_reseed_noise_restarts_the_device_generator_per_iteration(gpu):
    device_lib.seed(gpu, 7)
    device_lib.reseed_noise(gpu, 7, 12)
    a = device_lib.standard_normal(gpu.xp, (3, 2), numpy.float32)
    device_lib.reseed_noise(gpu, 7, 13)
    b = device_lib.standard_normal(gpu.xp, (3, 2), numpy.float32)
    device_lib.reseed_noise(gpu, 7, 12)
    c = device_lib.standard_normal(gpu.xp, (3, 2), numpy.float32)
    numpy.testing.assert_array_equal(a, c)
    assert not numpy.array_equal(a, b)
    assert gpu.xp.random.seeds == [device_lib.iteration_seed(7, i)
                                   for i in (12, 13, 12)]
    assert len({device_lib.iteration_seed(s, i) for s in range(3)
                for i in range(100)}) == 300
    assert all(0 <= device_lib.iteration_seed(s, i) < 2 ** 64
               for s in (0, 2 ** 32 - 1) for i in (0, 10 ** 9))


def test_every_seed_comes_from_one_derivation_with_its_old_values():
    from vae import parallel
    from vae.eval import estimators
    # the values the separate helpers gave before derive_seed replaced
    # them: runs recorded then resume and evaluate with the same noise
    assert device_lib.iteration_seed(7, 3) == 5061563556724077661
    assert device_lib.epoch_seed(7, 3) == 12897578926148367895
    assert estimators.batch_seed(7, 1, 3) == 1916955614
    assert parallel.rank_seed(7, 1) == 369571992
    # the same path gives the same seed, another path (or stream) another
    seeds = {device_lib.derive_seed(s, *path, bits=bits, spawn_key=key)
             for s in range(3) for path in ((0,), (1,), (0, 1))
             for bits in (32, 64) for key in ((), (1,))}
    assert len(seeds) == 3 * 3 * 2 * 2
    assert device_lib.derive_seed(5, 2, bits=32) < 2 ** 32
    with pytest.raises(ValueError, match='32 or 64 bits'):
        device_lib.derive_seed(5, 2, bits=16)


def test_on_the_cpu_reseeding_leaves_numpy_alone():
    cpu = device_lib.get_device(-1)
    numpy.random.seed(3)
    state = numpy.random.get_state()[1].copy()
    device_lib.reseed_noise(cpu, 3, 10)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state)


def test_noise_is_drawn_from_the_devices_generator(gpu):
    eps = device_lib.standard_normal(gpu.xp, (5, 2), numpy.float32)
    assert isinstance(eps, DeviceArray) and eps.dtype == numpy.float32
    numpy.random.seed(0)
    cpu = device_lib.standard_normal(numpy, (5, 2), numpy.float32)
    assert type(cpu) is numpy.ndarray and cpu.dtype == numpy.float32
    numpy.random.seed(0)
    numpy.testing.assert_array_equal(
        cpu, numpy.random.standard_normal((5, 2)).astype(numpy.float32))


def test_the_small_device_functions(gpu):
    assert device_lib.describe(gpu) == '@standin:0 (Stand-in GPU 0)'
    assert device_lib.describe(device_lib.get_device(-1), 2).startswith(
        'CPU (2 cores), NumPy ')
    device_lib.synchronize(gpu)
    assert gpu.xp.stream.synchronized == 1
    assert device_lib.memory_pool(gpu) is gpu.xp.pool
    assert device_lib.memory_pool(device_lib.get_device(-1)) is None
    array = gpu.send(numpy.arange(3.0))
    back = device_lib.to_cpu(array)
    assert type(array) is DeviceArray and type(back) is numpy.ndarray


@pytest.mark.numerics
def test_inference_moves_batches_there_and_results_back(gpu, images):
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    x = images[1][:30]
    on_cpu = inference.encode(model, x, batchsize=7)
    model.to_device(gpu)
    sent = gpu.sent
    on_gpu = inference.encode(model, x, batchsize=7)
    assert gpu.sent == sent + 5  # ceil(30 / 7) batches
    for a, b in zip(on_cpu, on_gpu):
        assert type(b) is numpy.ndarray
        numpy.testing.assert_array_equal(a, b)
    decoded = inference.decode(model, on_gpu[0])
    assert type(decoded) is numpy.ndarray and decoded.shape == (30, 784)


def test_evaluation_on_the_device_equals_the_cpus(gpu, images):
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    x = images[1][:40]
    device_lib.seed(device_lib.get_device(-1), 11)
    expected = estimators.evaluate(model, x, k=3, iw_samples=20, iw_chunk=7,
                                   batchsize=16, progress=False)
    model.to_device(gpu)
    # the stand-in's generator draws what NumPy's does from the same seed;
    # NumPy's own is then moved on, which must not matter
    device_lib.seed(gpu, 11)
    numpy.random.seed(12345)
    got = estimators.evaluate(model, x, k=3, iw_samples=20, iw_chunk=7,
                              batchsize=16, progress=False)
    for key in ('neg_elbo', 'reconstr', 'kl', 'neg_log_likelihood',
                'active_units'):
        assert type(got[key]) in (float, int), key
        assert got[key] == expected[key], key
    json.dumps(got)  # nothing from the device is left in the result


def run_training(out, images, device, **overrides):
    train_x, test_x = images
    return trainer.train(tiny_config(batchsize=50, **overrides), str(out),
                          train_x, test_x, device, progress=False)


@pytest.mark.numerics
def test_training_on_the_device_writes_a_model_the_cpu_loads(
        tmp_path, gpu, images):
    model = run_training(tmp_path / 'run', images, gpu, epoch=1)
    assert all(isinstance(p.array, DeviceArray) for p in model.params())
    assert gpu.sent > 6  # the model, then each of the 6 batches
    loaded = load_model(tmp_path / 'run' / 'model.npz')
    for name, array in params_of(model).items():
        numpy.testing.assert_array_equal(
            dict(loaded.namedparams())[name].array, array)
    # the noise of iteration i came from the device, seeded by (seed, i)
    assert gpu.xp.random.seeds == [device_lib.iteration_seed(0, i)
                                   for i in range(6)]


@pytest.mark.numerics
def test_a_run_on_gpu_1_equals_one_on_gpu_0(tmp_path, monkeypatch, images):
    # GPU 1's generator is the seeded one: every draw, in training and in
    # the test loss, must come from it and not from the current device's
    # (GPU 0 unless the run makes its device current)
    logs = []
    for index in (0, 1):
        with stand_in_gpu(monkeypatch, index) as device:
            run_training(tmp_path / str(index), images, device, epoch=2)
            assert set(device.xp.random.seeded_devices) == {index}
            assert device.xp.random.states.keys() == {index}  # drawn there
        logs.append(read_log(tmp_path / str(index), times=False))
    assert logs[1] == logs[0]


@pytest.mark.numerics
@pytest.mark.parametrize('reseeded', [True, False],
                         ids=['reseeded', 'not-reseeded'])
def test_a_resumed_device_run_equals_an_uninterrupted_one(
        tmp_path, monkeypatch, gpu, images, reseeded):
    if not reseeded:  # the control: the device's generator is not saved
        monkeypatch.setattr(device_lib, 'reseed_noise', lambda *a: None)
    straight = params_of(run_training(tmp_path / 'straight', images, gpu))
    interrupt_at(monkeypatch, 15)  # in epoch 3: 6 iterations an epoch
    with pytest.raises(trainer.TrainingInterrupted):
        run_training(tmp_path / 'resumed', images, gpu)
    monkeypatch.undo()
    if not reseeded:
        monkeypatch.setattr(device_lib, 'reseed_noise', lambda *a: None)
    with stand_in_gpu(monkeypatch) as fresh:  # a new process: a new device
        resumed = params_of(run_training(tmp_path / 'resumed', images,
                                         fresh))
    same = all(numpy.array_equal(straight[k], resumed[k]) for k in straight)
    assert same == reseeded


def test_the_scripts_run_on_the_device(tmp_path, monkeypatch, gpu, mnist_dir,
                                       images):
    monkeypatch.setattr(device_lib, 'get_device', lambda *a, **k: gpu)
    numpy.random.seed(0)
    path = tmp_path / 'model.npz'
    save_model(path, VAE(784, 2, 8, 'softplus'))
    evaluate = command('evaluate')
    assert evaluate.main(['--model', str(path), '--data-dir', mnist_dir,
                          '--limit', '20', '--iw-samples', '10',
                          '--no-progress', '--gpu', '0']) == 0
    result = json.loads((tmp_path / 'evaluation_test.json').read_text())
    assert result['device'] == '@standin:0' and result['n'] == 20
    plot_latent = command('plot_latent')
    assert plot_latent.main(['--model', str(path), '--data-dir', mnist_dir,
                             '--only', 'reconstruction', 'map', 'prior',
                             '--no-progress', '--gpu', '0']) == 0
    assert sorted(p.name for p in (tmp_path / 'figures').iterdir()) == [
        '2dim_map.png', 'compare_reconstruction.png', 'prior_samples.png']


def test_the_benchmark_runs_on_the_device(gpu, monkeypatch, capsys):
    benchmark = load_script('benchmark')
    result = benchmark.benchmark(gpu, batch_sizes=(20,), rounds=1, steps=2,
                                 warmup=1, square=32,
                                 paths=benchmark.GPU_PATHS)
    assert [(r['batch'], r['path']) for r in result['rows']] == [
        (20, 'plain')]
    assert result['rows'][0]['peak_memory_bytes'] == gpu.xp.pool.total_bytes()
    assert gpu.xp.stream.synchronized > 0
    monkeypatch.setattr(device_lib, 'get_device',
                        lambda gpu_id=-1, *a: gpu if gpu_id >= 0 else
                        device_lib.chainer.get_device('@numpy'))
    assert benchmark.main(['--quick', '--gpu', '0']) == 0
    printed = capsys.readouterr().out
    assert 'device: @standin:0 (Stand-in GPU 0)' in printed
