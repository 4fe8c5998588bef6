#!/usr/bin/env python
"""Check this project on a GPU machine in one command (``make gpu-check``).

    python scripts/gpu_check.py --data-dir /path/to/mnist
    python scripts/gpu_check.py --gpu -1 --quick      # a rehearsal on the CPU

Runs, each in a fresh process under a time limit, and prints one summary
line per step (PASS, FAIL or TIMEOUT, seconds, what it measured):

  gpu-tests   pytest -m gpu tests/ (the GPU tests; test-only packages such
              as nbformat may be missing)
  train       train.py --gpu N for 2 epochs on the real MNIST
  resume      the same command with --epoch 3: continues from epoch 2
  graph       train.py --gpu N --cuda-graph for 2 epochs (where the graph
              path cannot run, e.g. without nvmath-python, the step FAILs
              saying why, unless --allow-skip graph makes it a SKIP)
  evaluate    evaluate.py --gpu N with importance sampling
  figures     plot_latent.py --gpu N (every figure but the t-SNE)
  benchmark   benchmark.py --gpu N at batch 100

Everything goes under --out (default gpu_check/): each step's output in
<step>.log, the run's files, and summary.txt. No network is needed: MNIST
comes from --data-dir or $VAE_TEST_MNIST_DIR. On an H100 the whole check
should take well under the 5 minutes its limits add up to. Exit status: 0
when every step passed or was skipped with leave (``--allow-skip``; from
make: ``make gpu-check GPU_CHECK_FLAGS='--allow-skip graph'``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, 'scripts')
#: Seconds each step may take; they add up to 5 minutes.
LIMITS = {'gpu-tests': 90, 'train': 40, 'resume': 25, 'graph': 25,
          'evaluate': 40, 'figures': 40, 'benchmark': 40}

#: The steps that train from scratch, and their run folders under --out
#: (removed before the step, so that each check measures a fresh run).
FRESH = {'train': 'run', 'graph': 'run-graph'}


class Skipped(Exception):
    """A step ran but could not check what it is for (the reason)."""


def steps(args, out):
    """``[(name, argv, summarize), ...]``: each step's command, and a
    function that reads what it measured from its outputs."""
    python = sys.executable
    run = os.path.join(out, FRESH['train'])
    model = os.path.join(run, 'model.npz')
    data = ['--data-dir', args.data_dir] if args.data_dir else []
    device = ['--gpu', str(args.gpu)]
    size = ['--test'] if args.quick else []
    iw = ['--limit', '100', '--iw-samples', '50'] if args.quick else [
        '--limit', '2000', '--iw-samples', '1000']
    bench = ['--quick'] if args.quick else ['--batch-sizes', '100',
                                            '--rounds', '3']

    def script(name, *rest):
        return [python, os.path.join(SCRIPTS, name + '.py')] + list(rest)

    def last_epoch(folder=run):
        with open(os.path.join(folder, 'log')) as f:
            entry = json.load(f)[-1]
        return 'epoch %d: train %.2f, test %.2f' % (
            entry['epoch'], entry['main/loss'],
            entry['validation/main/loss'])

    def graph_epoch():
        with open(os.path.join(out, 'graph.log')) as f:
            for line in f:
                if 'without the CUDA graph' in line:
                    raise Skipped(line.strip())
        return last_epoch(os.path.join(out, FRESH['graph']))

    def evaluation():
        with open(os.path.join(run, 'evaluation_test.json')) as f:
            r = json.load(f)
        return '-ELBO %.2f, -log p(x) %.2f (K=%d, %d images, %.1f s)' % (
            r['neg_elbo'], r['neg_log_likelihood'], r['iw_samples'], r['n'],
            sum(r['seconds'].values()))

    def figures():
        names = sorted(os.listdir(os.path.join(run, 'figures')))
        return '%d files: %s' % (len(names), ', '.join(names))

    def timings():
        with open(os.path.join(out, 'benchmark.json')) as f:
            results = json.load(f)
        return '; '.join('%s: %s' % (r['device'], ', '.join(
            'batch %d %s %.2f ms/step' % (row['batch'], row['path'],
                                          1e3 * row['s_per_step'])
            for row in r['rows'])) for r in results)

    return [
        ('gpu-tests', [python, '-m', 'pytest', '-q', '-m', 'gpu',
                       '-p', 'no:cacheprovider', os.path.join(ROOT, 'tests')],
         None),
        ('train', script('train', '--epoch', '2', '--no-progress', '-o', run,
                         *(size + data + device)), last_epoch),
        ('resume', script('train', '--epoch', '3', '--no-progress', '-o', run,
                          *(size + data + device)), last_epoch),
        ('graph', script('train', '--epoch', '2', '--no-progress',
                         '--cuda-graph', '-o',
                         os.path.join(out, FRESH['graph']),
                         *(size + data + device)), graph_epoch),
        ('evaluate', script('evaluate', '--model', model, '--no-progress',
                            *(iw + data + device)), evaluation),
        ('figures', script('plot_latent', '--model', model, '--no-progress',
                           '--only', 'reconstruction', 'interpolation',
                           'all-pairs', 'prior', 'loss',
                           *(data + device)), figures),
        ('benchmark', script('benchmark', '--json',
                             os.path.join(out, 'benchmark.json'),
                             *(bench + device)), timings),
    ]


def run_step(name, argv, summarize, out, limit, data_dir, may_skip=False):
    """Run one step; returns its summary line and whether it passed. A
    step that could not check what it is for fails, unless ``may_skip``."""
    log = os.path.join(out, name + '.log')
    start = time.perf_counter()
    env = dict(os.environ, VAE_TEST_MNIST_DIR=data_dir, PYTHONPATH=os.pathsep
               .join([ROOT] + [p for p in os.environ.get(
                   'PYTHONPATH', '').split(os.pathsep) if p]))
    with open(log, 'w') as f:
        f.write('$ %s\n' % ' '.join(argv))
        f.flush()
        try:
            code = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=limit, env=env).returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - start
    if code is None:
        status, detail = 'TIMEOUT', 'stopped after %d s' % limit
    elif code:
        status, detail = 'FAIL', last_line(log)
    else:
        status = 'PASS'
        try:
            detail = summarize() if summarize else last_line(log)
        except Skipped as e:
            status, detail = skip_status(name, str(e), may_skip)
        except (OSError, ValueError, KeyError, IndexError) as e:
            status, detail = 'FAIL', 'ran, but its results: %s' % e
    return ('%-8s %-10s %6.1f s  %s' % (status, name, seconds, detail),
            status in ('PASS', 'SKIP'))


def skip_status(name, reason, may_skip):
    """``(status, detail)`` of a step that ran without checking its
    subject."""
    if may_skip:
        return 'SKIP', reason
    return 'FAIL', '%s (not run; --allow-skip %s accepts that)' % (reason,
                                                                    name)


def last_line(path):
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:300] if lines else '(no output)'


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--gpu', '-g', type=int, default=0,
                   help='GPU id; -1 rehearses the check on the CPU '
                   '(default %(default)s)')
    p.add_argument('--data-dir', default=os.environ.get('VAE_TEST_MNIST_DIR'),
                   help='folder with the MNIST files (default '
                   '$VAE_TEST_MNIST_DIR)')
    p.add_argument('--out', '-o', default='gpu_check',
                   help='output folder (default %(default)s)')
    p.add_argument('--quick', action='store_true',
                   help='small runs (the --test subset, few samples)')
    p.add_argument('--allow-skip', nargs='+', default=[],
                   choices=list(LIMITS), metavar='STEP',
                   help='steps that may be skipped where they cannot run '
                   'here (graph: no nvmath-python, or the CPU); any other '
                   'skip fails the check')
    p.add_argument('--only', nargs='+', choices=list(LIMITS),
                   metavar='STEP', help='run only these steps: %s'
                   % ', '.join(LIMITS))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.data_dir:
        sys.exit('error: name the MNIST folder with --data-dir or '
                 '$VAE_TEST_MNIST_DIR (no network is used)')
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    lines, passed = [], 0
    chosen = [s for s in steps(args, out)
              if args.only is None or s[0] in args.only]
    for name, argv_, summarize in chosen:
        if name in FRESH:  # an earlier check's finished run would stop at once
            shutil.rmtree(os.path.join(out, FRESH[name]), ignore_errors=True)
        line, ok = run_step(name, argv_, summarize, out, LIMITS[name],
                            args.data_dir, name in args.allow_skip)
        print(line, flush=True)
        lines.append(line)
        passed += ok
    total = ('gpu-check: %d of %d steps passed or skipped (--gpu %d), logs '
             'in %s' % (passed, len(chosen), args.gpu, out))
    print(total)
    with open(os.path.join(out, 'summary.txt'), 'w') as f:
        f.write('\n'.join(lines + [total]) + '\n')
    return 0 if passed == len(chosen) else 1


if __name__ == '__main__':
    sys.exit(main())
