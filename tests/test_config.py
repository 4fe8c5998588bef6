"""One source of defaults, config files, overrides and their errors."""
import json

import pytest

from vae import config as config_lib


def test_defaults_come_from_the_default_file():
    with open(config_lib.DEFAULT_CONFIG) as f:
        on_disk = json.load(f)
    assert config_lib.defaults() == on_disk
    assert config_lib.resolve() == on_disk


def test_config_file_then_flags(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'_comment': 'x', 'dim_z': 2, 'alpha': 1}))
    resolved = config_lib.resolve(path, {'dim_z': 5, 'epoch': None})
    assert resolved['dim_z'] == 5  # the flag wins
    assert resolved['alpha'] == 1.0 and isinstance(resolved['alpha'], float)
    assert resolved['epoch'] == config_lib.defaults()['epoch']
    assert '_comment' not in resolved


def test_article_configs_hold_the_published_settings():
    for name, dim_z in (('article_z20.json', 20), ('article_z2.json', 2)):
        c = config_lib.resolve('%s/%s' % (config_lib.CONFIG_DIR, name))
        assert (c['dim_z'], c['n_hidden'], c['activation']) == (
            dim_z, 500, 'softplus')
        assert (c['epoch'], c['batchsize'], c['alpha']) == (100, 100, 0.001)
        assert (c['k'], c['k_test'], c['C'], c['binarize']) == (
            1, 10, 1.0, None)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(config_lib.ConfigError, match='not found'):
        config_lib.resolve(tmp_path / 'missing.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"dim_z": 2,')
    with pytest.raises(config_lib.ConfigError, match='cannot read'):
        config_lib.resolve(bad)
    unknown = tmp_path / 'unknown.json'
    unknown.write_text('{"dimz": 2}')
    with pytest.raises(config_lib.ConfigError, match='unknown setting.*dimz'):
        config_lib.resolve(unknown)
    with pytest.raises(config_lib.ConfigError, match='dim_z must be like'):
        config_lib.resolve(overrides={'dim_z': 2.5})


def test_values_out_of_range_are_named_together(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'activation': 'gelu', 'binarize': 'foo',
                                'snapshot_retain': 0, 'C': -1}))
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.resolve(path)
    message = str(info.value)
    for part in ("activation must be one of", "'gelu'", "binarize must be",
                 "'foo'", 'snapshot_retain must be at least 1',
                 'C must not be negative'):
        assert part in message
