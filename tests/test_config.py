"""One source of defaults, config files, overrides and their errors."""
import dataclasses
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


def test_a_config_is_a_frozen_dataclass_without_defaults_in_python():
    fields = dataclasses.fields(config_lib.Config)
    assert [f.name for f in fields] == list(config_lib.defaults().as_dict())
    assert all(f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING for f in fields)
    config = config_lib.defaults()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_latent = 2
    changed = dataclasses.replace(config, n_latent=2, alpha=1)
    assert (changed.n_latent, changed.alpha) == (2, 1.0)
    assert isinstance(changed.alpha, float) and config.n_latent == 20
    with pytest.raises(config_lib.ConfigError,
                       match='epoch must be at least 1, got 0'):
        dataclasses.replace(config, epoch=0)
    with pytest.raises(config_lib.ConfigError,
                       match='n_h must be an integer, got True'):
        dataclasses.replace(config, n_h=True)


def test_the_key_lists_come_from_the_fields():
    assert config_lib.MODEL_KEYS == ('n_latent', 'n_h', 'activation')
    assert config_lib.RESUMABLE_KEYS == ('epoch', 'snapshot_retain', 'fast')
    assert config_lib.OLD_KEYS == {'dim_z': 'n_latent', 'n_hidden': 'n_h'}
    assert config_lib.ABSENT_MEANS == {'ranks': 1}
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.resolve(overrides={
            key: 0 for key in ('n_latent', 'n_h', 'k', 'k_test', 'epoch',
                               'batchsize', 'snapshot_retain', 'ranks')})
    assert str(info.value) == '; '.join(
        '%s must be at least 1, got 0' % key
        for key in ('n_latent', 'n_h', 'k', 'k_test', 'epoch', 'batchsize',
                    'snapshot_retain', 'ranks'))


@pytest.mark.parametrize('key,value', [
    ('n_latent', True), ('n_latent', 2.0), ('alpha', False),
    ('alpha', '0.1'), ('fast', 1), ('activation', 3), ('binarize', 1),
    ('seed', 1.5)])
def test_types_come_from_the_annotations(key, value):
    like = getattr(config_lib.defaults(), key)
    with pytest.raises(config_lib.ConfigError,
                       match='command line: %s must be like %r, got %r'
                       % (key, like, value)):
        config_lib.resolve(overrides={key: value})


def test_null_or_a_mode_for_binarize_and_an_int_for_a_float(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'binarize': 'dynamic', 'C': 0}))
    resolved = config_lib.resolve(path)
    assert resolved.binarize == 'dynamic' and resolved.C == 0.0
    assert isinstance(resolved.C, float)
    path.write_text(json.dumps({'binarize': None}))
    assert config_lib.resolve(path).binarize is None


def test_config_json_is_written_as_before(tmp_path):
    config = config_lib.resolve(overrides={'n_latent': 3, 'binarize':
                                           'threshold'})
    settings = config.as_dict()
    assert config.as_json() == json.dumps(settings, indent=2,
                                          sort_keys=True) + '\n'
    path = tmp_path / 'config.json'
    path.write_text(config.as_json())
    assert config_lib.read_config_file(path) == settings
    assert config_lib.resolve(path) == config


def test_an_integer_too_large_for_a_float_reads_as_infinite(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text('{"alpha": 1%s}' % ('0' * 400))
    with pytest.raises(config_lib.ConfigError,
                       match='alpha must be positive and finite, got inf'):
        config_lib.resolve(path)


def test_a_run_recorded_by_an_older_version_is_compared_as_before(tmp_path):
    from vae.train import resume as resume_lib
    out = tmp_path / 'run'
    out.mkdir()
    config = config_lib.resolve(overrides={'n_latent': 3, 'n_h': 64})
    old = config.as_dict()  # the old size names, and no ranks yet
    old['dim_z'], old['n_hidden'] = old.pop('n_latent'), old.pop('n_h')
    del old['ranks']
    (out / 'config.json').write_text(json.dumps(old))
    (out / 'model.npz').write_bytes(b'')
    resume_lib.check_previous_run(str(out), config)
    resume_lib.check_previous_run(str(out), dataclasses.replace(
        config, epoch=7, snapshot_retain=1, fast=False))
    with pytest.raises(resume_lib.ResumeError,
                       match=r'a run of another model \(n_latent=3 there, '
                       r'4 now; seed=0 there, 5 now\)'):
        resume_lib.check_previous_run(str(out), dataclasses.replace(
            config, n_latent=4, seed=5))
    with pytest.raises(resume_lib.ResumeError,
                       match=r'a run of other settings \(ranks=1 there, '
                       r'2 now\)'):
        resume_lib.check_previous_run(str(out), dataclasses.replace(
            config, ranks=2))
