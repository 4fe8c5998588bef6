#!/usr/bin/env python
"""Print the README's tables of results from the files that made them.

    make article article-eval benchmark    # train, evaluate, time (hours)
    python scripts/readme_numbers.py        # the tables, in Markdown

Reads the two article runs' logs and evaluations (``result/article_z20``,
``result/article_z2``: ``log``, ``evaluation_test.json``) and the benchmark's
JSON (``result/benchmark.json``), whichever exist, and prints the README's
"Results", "The article's models, evaluated" and "Speed" tables from them,
so that every number there comes from the code through a make target.
"""
import argparse
import json
import os
import sys

#: The article's published losses (its logged run, n_latent 20).
ARTICLE = {1: {'main/loss': 171.64, 'validation/main/loss': 136.44},
           100: {'main/loss': 93.95, 'main/reconstr': 73.68,
                 'validation/main/loss': 97.19,
                 'validation/main/reconstr': 76.94}}
RUNS = (('article_z20', 20), ('article_z2', 2))


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _loss(entry, prefix):
    value = '%.2f' % entry['%sloss' % prefix]
    if '%sreconstr' % prefix in entry:
        value += ' (%.2f)' % entry['%sreconstr' % prefix]
    return value


def results_table(result_dir):
    """The training losses at epochs 1 and 100, beside the article's."""
    lines = ['| n_latent | epoch | | train | test (k = 10) |',
             '| --- | --- | --- | --- | --- |']
    minutes = []
    for name, n_latent in RUNS:
        log = _read(os.path.join(result_dir, name, 'log'))
        if not log:
            continue
        by_epoch = {e['epoch']: e for e in log}
        for epoch in (1, max(by_epoch)):
            if n_latent == 20 and epoch in ARTICLE:
                ref = ARTICLE[epoch]
                lines.append('| 20 | %d | article | %s | %s |' % (
                    epoch, _loss(ref, 'main/'),
                    _loss(ref, 'validation/main/')))
            entry = by_epoch[epoch]
            lines.append('| %d | %d | this project | %s | %s |' % (
                n_latent, epoch, _loss(entry, 'main/'),
                _loss(entry, 'validation/main/')))
        minutes.append('%s: %.1f min for %d epochs' % (
            name, log[-1]['elapsed_time'] / 60, len(log)))
    return '\n'.join(lines + [''] + minutes) if minutes else ''


def evaluation_table(result_dir):
    """The evaluation of each run's model (scripts/evaluate.py)."""
    lines = ['| model | −ELBO (k = %s) | reconstruction | KL | −log p(x), '
             'K = %s (± s.e.) | active units |', '| --- | --- | --- | --- | '
             '--- | --- |']
    ks = set()
    for name, n_latent in RUNS:
        r = _read(os.path.join(result_dir, name, 'evaluation_test.json'))
        if not r:
            continue
        ks.add((r['k'], r['iw_samples']))
        lines.append(
            '| n_latent %d (`configs/%s.json`), %d images | %.2f | %.2f | '
            '%.2f | %s | %d / %d |' % (
                n_latent, name, r['n'], r['neg_elbo'], r['reconstr'],
                r['kl'], '-' if r['neg_log_likelihood'] is None else
                '%.2f ± %.2f' % (r['neg_log_likelihood'],
                                 r['neg_log_likelihood_sem'] or 0),
                r['active_units'], r['n_latent']))
    if not ks:
        return ''
    k, iw = sorted(ks)[0] if len(ks) == 1 else ('k', 'K')
    lines[0] = lines[0] % (k, iw)
    return '\n'.join(lines)


def speed_table(path):
    """The benchmark's rows (scripts/benchmark.py --json)."""
    results = _read(path)
    if not results:
        return ''
    out = []
    for result in results:
        plain = {r['batch']: r['s_per_step'] for r in result['rows']
                 if r['path'] == 'plain'}
        out += ['%s; %d^3 float32 products at %.0f GFLOP/s' % (
            result['device'], result['square_n'], result['square_gflops']),
            '', '| batch | path | s/epoch | images/s | share of the step\'s '
            'matrix-product rate | speed-up | peak memory |',
            '| --- | --- | --- | --- | --- | --- | --- |']
        for r in result['rows']:
            speedup = plain[r['batch']] / r['s_per_step']
            out.append('| %d | %s | %.1f | %s | %.0f %% | %s | %.0f MB |' % (
                r['batch'], r['path'], r['s_per_epoch'],
                format(round(r['samples_per_s']), ','),
                100 * r['fraction_of_step_gemm'],
                '' if r['path'] == 'plain' else '%.2f×' % speedup,
                r['peak_memory_bytes'] / 2.0 ** 20))
        out.append('')
    return '\n'.join(out)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('results', nargs='?', default='result',
                   help='folder of the runs and of benchmark.json (default '
                   '%(default)s)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    sections = (
        ('Results', results_table(args.results)),
        ("The article's models, evaluated", evaluation_table(args.results)),
        ('Speed', speed_table(os.path.join(args.results, 'benchmark.json'))))
    printed = False
    for title, table in sections:
        if table:
            print('## %s\n\n%s\n' % (title, table))
            printed = True
    if not printed:
        sys.exit('error: no results in %s; run make article article-eval '
                 'benchmark first' % args.results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
