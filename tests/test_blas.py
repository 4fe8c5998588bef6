"""What computes: NumPy's BLAS and its kernel, named in the outputs, and the
one-line note that a generic kernel on a CPU with AVX2 gets
(``vae.device.generic_kernel_note``)."""
import json
import os
import subprocess
import sys

import pytest

from testutil import ROOT, SCRIPTS, SMALL_RUN
from vae import device as device_lib

AVX512 = frozenset({'SSE3', 'AVX', 'AVX2', 'FMA3', 'AVX512F'})
AVX2 = frozenset({'SSE3', 'AVX', 'AVX2', 'FMA3'})


def openblas(kernel, version='0.3.23.dev'):
    """A threadpoolctl record of an OpenBLAS running ``kernel``."""
    return {'user_api': 'blas', 'internal_api': 'openblas',
            'version': version, 'num_threads': 2, 'architecture': kernel}


@pytest.mark.parametrize('kernel', ['Prescott', 'Katmai', 'Core2',
                                    'Nehalem', 'Generic'])
def test_a_generic_kernel_on_a_cpu_with_avx2_gets_a_note(kernel):
    note = device_lib.generic_kernel_note([openblas(kernel)], AVX512)
    assert 'OpenBLAS 0.3.23.dev (%s kernel, 2 threads)' % kernel in note
    assert 'NumPy 2' in note and 'OPENBLAS_CORETYPE=SkylakeX' in note
    assert '\n' not in note


def test_the_advice_fits_the_cpu_and_the_cause():
    note = device_lib.generic_kernel_note
    assert 'OPENBLAS_CORETYPE=Haswell' in note([openblas('Prescott')], AVX2)
    forced = note([openblas('Prescott')], AVX2, forced='Prescott')
    assert 'OPENBLAS_CORETYPE=Prescott forces it: unset it' in forced
    blis = dict(openblas('generic'), internal_api='blis')
    assert 'BLIS' in note([blis], AVX2)
    assert 'OPENBLAS_CORETYPE' not in note([blis], AVX2)


@pytest.mark.parametrize('blas,features', [
    ([openblas('SkylakeX')], AVX512),
    ([openblas('Haswell')], AVX512),  # AVX2 kernel on an AVX-512 CPU
    ([openblas('Sandybridge')], AVX2),  # an AVX kernel, chosen on purpose
    ([openblas('Prescott')], {'SSE3'}),  # no better kernel for this CPU
    ([openblas('Nehalem')], {'SSE3', 'AVX'}),
    ([{'user_api': 'blas', 'internal_api': 'mkl', 'version': '2024.2',
       'num_threads': 2}], AVX512),  # MKL names no kernel
    ([], AVX512),
], ids=['skylakex', 'haswell', 'sandybridge', 'sse-cpu', 'avx-cpu', 'mkl',
        'no-blas'])
def test_no_note_where_the_kernel_fits_or_nothing_is_better(blas, features):
    assert device_lib.generic_kernel_note(blas, features) is None


def test_this_machines_blas_is_named():
    blas = device_lib.numpy_blas()
    assert blas, 'threadpoolctl finds no BLAS beside NumPy'
    text = device_lib.describe_blas(blas)
    assert blas[0]['version'] in text
    assert 'kernel' in text and 'threads' in text


def run_forced(kernel, args):
    """``python args`` from the repository with ``$OPENBLAS_CORETYPE`` set to
    ``kernel``; the finished process."""
    env = dict(os.environ, OPENBLAS_CORETYPE=kernel, PYTHONPATH=str(ROOT)
               + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.run([sys.executable] + args, capture_output=True,
                          text=True, env=env, cwd=str(ROOT), timeout=300)


forcing_works = pytest.mark.skipif(
    'AVX2' not in device_lib.cpu_features()
    or device_lib.numpy_blas()[0].get('internal_api') != 'openblas',
    reason='needs a CPU with AVX2 and NumPy on an OpenBLAS')


@forcing_works
def test_a_forced_generic_kernel_is_reported():
    run = run_forced('Prescott', ['-c', (
        'import json\n'
        'from vae import device\n'
        'print(json.dumps([device.numpy_blas(), device.blas_note()]))')])
    assert run.returncode == 0, run.stderr
    blas, note = json.loads(run.stdout)
    # OpenBLAS 0.3.23 names the forced kernel Prescott, 0.3.31 Katmai
    assert blas[0]['architecture'] in ('Prescott', 'Katmai')
    assert 'OPENBLAS_CORETYPE=Prescott forces it' in note


@forcing_works
def test_training_under_a_generic_kernel_says_so(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    run = run_forced('Prescott', [str(SCRIPTS / 'train.py')] + SMALL_RUN + [
        '-e', '1', '--data-dir', mnist_dir, '-o', str(out)])
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines()
             if line.startswith("note: NumPy's BLAS")]
    assert len(notes) == 1 and 'generic kernel' in notes[0]
    (entry,) = json.loads((out / 'environment.json').read_text())
    assert entry['blas'][0]['architecture'] in ('Prescott', 'Katmai')
    assert entry['blas'][0]['version']
