"""scripts/readme_numbers.py: the README's tables from the runs' files."""
import json

import pytest

from testutil import load_script

readme_numbers = load_script('readme_numbers')


def test_tables_from_logs_evaluations_and_benchmark(tmp_path, capsys):
    run = tmp_path / 'article_z20'
    run.mkdir()
    log = [{'epoch': e, 'main/loss': 200.0 - e, 'main/reconstr': 150.0 - e,
            'validation/main/loss': 190.0 - e,
            'validation/main/reconstr': 140.0 - e,
            'elapsed_time': 6.0 * e} for e in range(1, 101)]
    (run / 'log').write_text(json.dumps(log))
    (run / 'evaluation_test.json').write_text(json.dumps({
        'k': 10, 'iw_samples': 5000, 'n': 10000, 'neg_elbo': 97.251,
        'reconstr': 76.9, 'kl': 20.35, 'neg_log_likelihood': 93.02,
        'neg_log_likelihood_sem': 0.26, 'active_units': 11,
        'n_latent': 20}))
    (tmp_path / 'benchmark.json').write_text(json.dumps([{
        'device': 'CPU (2 cores)', 'square_n': 2048, 'square_gflops': 180.0,
        'rows': [dict(batch=100, path=path, s_per_step=step,
                      s_per_epoch=600 * step, samples_per_s=100 / step,
                      fraction_of_step_gemm=frac,
                      peak_memory_bytes=30 * 2 ** 20)
                 for path, step, frac in (('plain', 0.02, 0.4),
                                          ('fast', 0.01, 0.8))]}]))
    assert readme_numbers.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert '| 20 | 1 | article | 171.64 | 136.44 |' in printed
    assert ('| 20 | 100 | this project | 100.00 (50.00) | 90.00 (40.00) |'
            in printed)
    assert 'article_z20: 10.0 min for 100 epochs' in printed
    assert ('| n_latent 20 (`configs/article_z20.json`), 10000 images | '
            '97.25 | 76.90 | 20.35 | 93.02 ± 0.26 | 11 / 20 |') in printed
    assert '| 100 | fast | 6.0 | 10,000 | 80 % | 2.00× | 30 MB |' in printed


def test_nothing_to_report_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match='no results in'):
        readme_numbers.main([str(tmp_path)])
