"""vae/train/model_files.py: round trip, metadata, errors.

Their atomic writes are tested with vae/atomic.py (tests/test_atomic.py)."""
import json

import chainer.functions as F
import numpy
import pytest

from vae import VAE
from vae.train.model_files import (META_KEY, ModelFileError, load_model,
                                   save_model)


def read_meta(path):
    with numpy.load(path) as npz:
        return json.loads(str(npz[META_KEY]))


@pytest.mark.numerics
def test_round_trip_rebuilds_the_same_model(tmp_path):
    numpy.random.seed(0)
    model = VAE(784, 3, 17, F.softplus)
    path = tmp_path / 'model.npz'
    save_model(path, model)
    assert read_meta(path) == {'format': 1, 'n_in': 784, 'n_latent': 3,
                               'n_h': 17, 'activation': 'softplus'}
    loaded = load_model(path)
    assert loaded.act_func is F.softplus
    original = dict(model.namedparams())
    for name, param in loaded.namedparams():
        numpy.testing.assert_array_equal(param.array, original[name].array)
    x = numpy.random.rand(4, 784).astype(numpy.float32)
    # exact: the same weights through the same operations on the same shapes
    numpy.testing.assert_array_equal(loaded(x).array, model(x).array)


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match='model file not found'):
        load_model(tmp_path / 'nope.npz')
    text = tmp_path / 'text.npz'
    text.write_text('not a zip')
    with pytest.raises(ModelFileError, match='not a readable'):
        load_model(text)
    foreign = tmp_path / 'foreign.npz'
    numpy.savez(foreign, W=numpy.zeros(3))
    with pytest.raises(ModelFileError, match='not a chainer-vae model file'):
        load_model(foreign)
    good = tmp_path / 'good.npz'
    save_model(good, VAE(8, 2, 4))
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ModelFileError, match='truncated.npz'):
        load_model(truncated)


def test_parameters_that_disagree_with_the_metadata(tmp_path):
    path = tmp_path / 'model.npz'
    save_model(path, VAE(8, 2, 4))
    with numpy.load(path) as npz:
        arrays = dict(npz)
    meta = json.loads(str(arrays['_vae_meta']))
    meta['n_h'] = 5
    arrays['_vae_meta'] = numpy.array(json.dumps(meta))
    numpy.savez(path, **arrays)
    with pytest.raises(ModelFileError, match='do not match its recorded'):
        load_model(path)


def test_custom_activation_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match='custom activation'):
        save_model(tmp_path / 'm.npz', VAE(4, 2, 3, act_func=lambda h: h))
