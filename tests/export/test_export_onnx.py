"""The export_onnx command and vae/export/onnx_export.py: the files run in
onnxruntime.

A tiny VAE is trained here for a few steps on real MNIST images
(``testutil.train_tiny``, as in tests/viz/test_figures.py) and exported with
the command's main(); onnxruntime runs the files on 200 test images and their
latent means, against Chainer.
"""
import os

import chainer
import numpy
import pytest

from testutil import (BAD_MODEL_FILES, N_TRAIN, assert_one_line_error,
                      command, run_main, train_tiny)
from vae.eval import inference
from vae.export import onnx_export
from vae.model import ACTIVATIONS, VAE
from vae.train.model_files import save_model

# a GPU machine may lack onnx and onnxruntime: `pytest -m gpu tests/` must
# still collect, so this module skips itself
onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')

export_onnx = command('export_onnx')

N_IMAGES = 200


def session(model):
    """An onnxruntime session of a file (a path) or of a model's bytes."""
    if not isinstance(model, bytes):
        model = str(model)
    return onnxruntime.InferenceSession(model,
                                        providers=['CPUExecutionProvider'])


def names(sess):
    return ([(i.name, i.shape) for i in sess.get_inputs()],
            [(o.name, o.shape) for o in sess.get_outputs()])


def run_export(model, directory, *flags):
    model_path = directory / 'model.npz'
    save_model(model_path, model)
    out = directory / 'onnx'
    rc, printed = run_main(export_onnx, ['--model', str(model_path),
                                         '--out', str(out)] + list(flags))
    assert rc == 0
    return out, printed


@pytest.fixture(scope='module')
def model(mnist):
    return train_tiny(mnist[0].images[:N_TRAIN], n_latent=3)


@pytest.fixture(scope='module')
def images(mnist):
    return mnist[1].images[:N_IMAGES]


@pytest.fixture(scope='module')
def exported(model, tmp_path_factory):
    return run_export(model, tmp_path_factory.mktemp('onnx'))


def test_script_writes_the_two_files(exported):
    out, printed = exported
    assert sorted(os.listdir(out)) == ['decoder.onnx', 'encoder.onnx']
    assert printed == 'wrote %s\nwrote %s\n' % (out / 'encoder.onnx',
                                                out / 'decoder.onnx')
    for name in os.listdir(out):
        onnx.checker.check_model(str(out / name))


@pytest.mark.numerics
def test_encoder_matches_chainer_on_200_test_images(exported, model, images):
    sess = session(exported[0] / 'encoder.onnx')
    assert names(sess) == ([('x', ['batch', 784])],
                           [('mu', ['batch', 3]), ('ln_var', ['batch', 3])])
    mu, ln_var = sess.run(None, {'x': images})
    expected_mu, expected_ln_var = inference.encode(model, images)
    assert mu.shape == (N_IMAGES, 3)
    numpy.testing.assert_allclose(mu, expected_mu, rtol=0, atol=1e-5)
    numpy.testing.assert_allclose(ln_var, expected_ln_var, rtol=0, atol=1e-5)
    # the batch axis is free: one image alone
    one, _ = sess.run(None, {'x': images[7:8]})
    numpy.testing.assert_allclose(one[0], expected_mu[7], rtol=0, atol=1e-5)


@pytest.mark.numerics
def test_decoder_matches_chainer_on_their_means(exported, model, images):
    sess = session(exported[0] / 'decoder.onnx')
    assert names(sess) == ([('z', ['batch', 3])], [('probs', ['batch', 784])])
    mu, _ = inference.encode(model, images)  # (200, 3)
    (probs,) = sess.run(None, {'z': mu})
    assert probs.shape == (N_IMAGES, 784)
    numpy.testing.assert_allclose(probs, inference.decode(model, mu), rtol=0,
                                  atol=1e-5)
    # and through the two files, the article's reconstruction
    (encoded, _) = session(exported[0] / 'encoder.onnx').run(
        None, {'x': images})
    (rebuilt,) = sess.run(None, {'z': encoded})
    numpy.testing.assert_allclose(rebuilt,
                                  inference.reconstruct(model, images),
                                  rtol=0, atol=1e-5)


def test_logits_flag_exports_the_logits(model, images, tmp_path):
    out, _ = run_export(model, tmp_path, '--logits')
    sess = session(out / 'decoder.onnx')
    assert names(sess)[1] == [('logits', ['batch', 784])]
    mu, _ = inference.encode(model, images)
    (logits,) = sess.run(None, {'z': mu})
    with chainer.no_backprop_mode():
        expected = model.decode(mu, sigmoid=False).array
    numpy.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_each_file_holds_only_its_own_weights_as_constants(exported, model):
    for name, links in (('encoder.onnx', ('le1', 'le2', 'le3_mu',
                                          'le3_ln_var')),
                        ('decoder.onnx', ('ld1', 'ld2', 'ld3'))):
        graph = onnx.load(str(exported[0] / name)).graph
        stored = {t.name: onnx.numpy_helper.to_array(t)
                  for t in graph.initializer}
        assert sorted(stored) == sorted('param_vae_%s_%s' % (link, p)
                                        for link in links for p in 'Wb')
        for link in links:
            numpy.testing.assert_array_equal(
                stored['param_vae_%s_W' % link], getattr(model, link).W.array)
        assert [i.name for i in graph.input] in (['x'], ['z'])


@pytest.mark.numerics
@pytest.mark.parametrize('activation', sorted(ACTIVATIONS))
def test_every_activation_exports(activation, images, tmp_path):
    numpy.random.seed(1)
    model = VAE(784, 2, 8, activation)
    encoder = onnx_export.to_onnx(onnx_export._Encoder(model), images[:1],
                                  'x', ['mu', 'ln_var'])
    decoder = onnx_export.to_onnx(onnx_export._Decoder(model, True),
                                  numpy.zeros((1, 2), numpy.float32), 'z',
                                  ['probs'])
    mu, ln_var = session(encoder.SerializeToString()).run(
        None, {'x': images[:50]})
    expected = inference.encode(model, images[:50])
    numpy.testing.assert_allclose(mu, expected[0], rtol=0, atol=1e-5)
    numpy.testing.assert_allclose(ln_var, expected[1], rtol=0, atol=1e-5)
    z = numpy.random.RandomState(0).standard_normal((50, 2)).astype(
        numpy.float32) * 3
    (probs,) = session(decoder.SerializeToString()).run(None, {'z': z})
    numpy.testing.assert_allclose(probs, inference.decode(model, z), rtol=0,
                                  atol=1e-5)


def test_keep_used_initializers_drops_unread_ones():
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(numpy.ones((2, 2), numpy.float32), 'w')
    unused = numpy_helper.from_array(numpy.ones(3, numpy.float32), 'unused')
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'w'], ['y'])], 'g',
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
         for n, s in (('x', [1, 2]), ('w', [2, 2]), ('unused', [3]))],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2])],
        initializer=[w, unused])
    proto = helper.make_model(graph)
    assert onnx_export.keep_used_initializers(proto) == ['unused']
    assert [t.name for t in proto.graph.initializer] == ['w']
    assert [i.name for i in proto.graph.input] == ['x']
    onnx.checker.check_model(proto)


@pytest.mark.parametrize('make, message', BAD_MODEL_FILES)
def test_bad_model_file_is_a_one_line_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as e:
        export_onnx.main(['--model', str(path), '--out', str(tmp_path / 'o')])
    assert_one_line_error(e, message)
    assert not (tmp_path / 'o').exists()


def test_a_missing_out_is_made_with_its_parents(tmp_path, exported):
    model = tmp_path / 'model.npz'
    save_model(model, VAE(784, 2, 4))
    out = tmp_path / 'missing' / 'onnx'
    assert export_onnx.main(['--model', str(model), '--out', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [onnx_export.ENCODER, onnx_export.DECODER])
