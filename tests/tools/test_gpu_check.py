"""scripts/gpu_check.py rehearsed on the CPU (--gpu -1 --quick).

On a GPU machine the same script runs the same steps with --gpu 0; here
every step must pass on the CPU (the GPU tests skip), so that the first run
on a real GPU does not die on the check's own plumbing.
"""
import pytest

from testutil import load_script

gpu_check = load_script('gpu_check')


def test_every_step_passes_and_says_what_it_measured(tmp_path, mnist_dir,
                                                     capsys):
    out = tmp_path / 'check'
    assert gpu_check.main(['--gpu', '-1', '--quick', '--data-dir', mnist_dir,
                           '--out', str(out), '--allow-skip', 'graph']) == 0
    printed = capsys.readouterr().out.splitlines()
    summary = (out / 'summary.txt').read_text().splitlines()
    assert summary == printed
    steps = [line.split()[1] for line in summary[:-1]]
    assert steps == list(gpu_check.LIMITS)
    by_step = dict(zip(steps, summary))
    # on the CPU the graph path cannot run: the step says so, skipped
    assert by_step.pop('graph').startswith('SKIP')
    assert 'needs a GPU' in (out / 'graph.log').read_text()
    assert all(line.startswith('PASS') for line in by_step.values()), summary
    assert 'epoch 2: train' in by_step['train']
    assert 'epoch 3: train' in by_step['resume']
    assert '-log p(x)' in by_step['evaluate']
    assert 'compare_reconstruction.png' in by_step['figures']
    assert 'ms/step' in by_step['benchmark']
    assert summary[-1].startswith(
        'gpu-check: 7 of 7 steps passed or skipped (--gpu -1)')
    for step in steps:
        assert (out / (step + '.log')).exists()


def test_a_graph_step_that_could_not_run_fails_unless_allowed(
        tmp_path, mnist_dir, capsys):
    # on the CPU the graph path falls back to another path: a check that
    # counted that as a pass could pass without ever running the graph
    out = tmp_path / 'check'
    argv = ['--gpu', '-1', '--quick', '--data-dir', mnist_dir, '--out',
            str(out), '--only', 'graph']
    assert gpu_check.main(argv) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith('FAIL     graph')
    assert line.endswith('needs a GPU; training without the CUDA graph (not '
                         'run; --allow-skip graph accepts that)')
    assert gpu_check.main(argv + ['--allow-skip', 'graph']) == 0
    assert capsys.readouterr().out.startswith('SKIP     graph')


def test_make_gpu_check_passes_its_flags_on():
    import pathlib
    makefile = (pathlib.Path(gpu_check.ROOT) / 'Makefile').read_text()
    assert ('\t$(GPU_PYTHON) scripts/gpu_check.py $(data_flag) '
            '$(GPU_CHECK_FLAGS)\n') in makefile


def test_a_failing_step_is_reported_and_fails_the_check(tmp_path, mnist_dir,
                                                        capsys):
    out = tmp_path / 'check'
    (out / 'run').mkdir(parents=True)
    (out / 'run' / 'model.npz').write_text('not a model')
    assert gpu_check.main(['--gpu', '-1', '--quick', '--data-dir', mnist_dir,
                           '--out', str(out), '--only', 'evaluate']) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith('FAIL') and 'not a readable .npz' in line


def test_without_mnist_it_says_where_to_point(monkeypatch):
    monkeypatch.delenv('VAE_TEST_MNIST_DIR', raising=False)
    with pytest.raises(SystemExit, match='--data-dir'):
        gpu_check.main(['--gpu', '-1', '--data-dir', ''])
