"""One source of defaults, config files, overrides and their errors."""
import json

import pytest

from vae import config as config_lib


def test_defaults_come_from_the_default_file():
    with open(config_lib.DEFAULT_CONFIG) as f:
        on_disk = json.load(f)
    assert config_lib.defaults().as_dict() == on_disk
    assert config_lib.resolve().as_dict() == on_disk
    # in the order of the file, and the order of Config's fields
    assert list(config_lib.resolve().as_dict()) == list(on_disk)


def test_config_file_then_flags(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'_comment': 'x', 'n_latent': 2, 'alpha': 1}))
    resolved = config_lib.resolve(path, {'n_latent': 5, 'epoch': None})
    assert resolved.n_latent == 5  # the flag wins
    assert resolved.alpha == 1.0 and isinstance(resolved.alpha, float)
    assert resolved.epoch == config_lib.defaults().epoch
    assert '_comment' not in resolved.as_dict()


def test_article_configs_hold_the_published_settings():
    for name, n_latent in (('article_z20.json', 20),
                           ('article_z2.json', 2)):
        c = config_lib.resolve('%s/%s' % (config_lib.CONFIG_DIR, name))
        assert (c.n_latent, c.n_h, c.activation) == (
            n_latent, 500, 'softplus')
        assert (c.epoch, c.batchsize, c.alpha) == (100, 100, 0.001)
        assert (c.k, c.k_test, c.C, c.binarize) == (
            1, 10, 1.0, None)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(config_lib.ConfigError, match='not found'):
        config_lib.resolve(tmp_path / 'missing.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"n_latent": 2,')
    with pytest.raises(config_lib.ConfigError, match='cannot read'):
        config_lib.resolve(bad)
    unknown = tmp_path / 'unknown.json'
    unknown.write_text('{"dimz": 2}')
    with pytest.raises(config_lib.ConfigError, match='unknown setting.*dimz'):
        config_lib.resolve(unknown)
    with pytest.raises(config_lib.ConfigError,
                       match='n_latent must be like'):
        config_lib.resolve(overrides={'n_latent': 2.5})


def test_values_out_of_range_are_named_together(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'activation': 'gelu', 'binarize': 'foo',
                                'snapshot_retain': 0, 'C': -1}))
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.resolve(path)
    message = str(info.value)
    for part in ("activation must be one of", "'gelu'", "binarize must be",
                 "'foo'", 'snapshot_retain must be at least 1',
                 'C must be finite and not negative'):
        assert part in message


def test_files_with_the_old_size_names_read_as_the_new(tmp_path):
    path = tmp_path / 'config.json'  # as runs before the rename wrote it
    path.write_text(json.dumps({'dim_z': 3, 'n_hidden': 64, 'k': 2}))
    assert config_lib.read_config_file(path) == {'n_latent': 3, 'n_h': 64,
                                                 'k': 2}
    resolved = config_lib.resolve(path)
    assert (resolved.n_latent, resolved.n_h) == (3, 64)
    both = tmp_path / 'both.json'
    both.write_text(json.dumps({'dim_z': 3, 'n_latent': 4}))
    with pytest.raises(config_lib.ConfigError,
                       match='gives n_latent twice'):
        config_lib.read_config_file(both)


@pytest.mark.parametrize('text,message', [
    ('{"alpha": 1e309}', 'alpha must be positive and finite, got inf'),
    ('{"C": 1e309}', 'C must be finite and not negative, got inf'),
    ('{"alpha": NaN}', 'alpha must be positive and finite, got nan'),
])
def test_infinite_settings_are_refused(tmp_path, text, message):
    path = tmp_path / 'c.json'
    path.write_text(text)  # Python's json reads 1e309 as inf
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.resolve(path)

