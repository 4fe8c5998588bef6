"""The VAE's encoder and decoder as ONNX files, with Chainer's own exporter.

``onnx_chainer`` ships inside the chainer 7.8.1 package. It runs a forward
pass of a chain and converts every function it meets, so each file holds
exactly what :meth:`vae.model.VAE.encode` or :meth:`~vae.model.VAE.decode`
computes (Gemm for the links, the activation's own ONNX operator, Sigmoid):

- ``encoder.onnx``: input ``x`` (batch, n_in) -> ``mu``, ``ln_var``
  (batch, n_latent), ``ln_var`` = log(sigma**2);
- ``decoder.onnx``: input ``z`` (batch, n_latent) -> ``probs``, the
  Bernoulli means, or ``logits`` (``logits=True``).

The batch axis is symbolic. Two things are tidied after the export:
onnx_chainer writes every parameter of the chain it is given, and lists the
parameters among the graph's inputs, as ONNX files before IR version 4 had
to. Each file keeps only the parameters its graph reads (the encoder none of
the decoder's), as initializers only, so that runtimes treat them as
constants (onnxruntime warns about, and does not fold, an initializer that
is also an input).

onnx_chainer reads ``onnx.mapping``, removed after onnx 1.18 (the ``onnx``
extra of setup.py pins it) and deprecated in the versions that have it.
"""
import os
import warnings

import chainer

from vae.atomic import atomic_path

ENCODER, DECODER = 'encoder.onnx', 'decoder.onnx'
#: onnx_chainer's newest tested opset (onnx_chainer.MAXIMUM_OPSET_VERSION).
OPSET = 11
#: onnx_chainer's oldest opset (onnx_chainer.MINIMUM_OPSET_VERSION).
MINIMUM_OPSET = 7
#: The newest onnx whose ``onnx.mapping`` onnx_chainer can read.
NEWEST_ONNX = '1.18.0'


def opset_problem(opset):
    """Why ``opset`` cannot be exported, or ``None``: onnx_chainer writes
    opsets 7 to 11 (a higher number would be written into files that
    runtimes refuse)."""
    if not MINIMUM_OPSET <= opset <= OPSET:
        return ('--opset %d is not one that onnx_chainer writes; choose one '
                'of %d to %d' % (opset, MINIMUM_OPSET, OPSET))
    return None


class _Encoder(chainer.Chain):
    def __init__(self, model):
        super().__init__()
        with self.init_scope():
            self.vae = model

    def forward(self, x):
        return self.vae.encode(x)


class _Decoder(chainer.Chain):
    def __init__(self, model, sigmoid):
        super().__init__()
        self.sigmoid = sigmoid
        with self.init_scope():
            self.vae = model

    def forward(self, z):
        return self.vae.decode(z, sigmoid=self.sigmoid)


def _onnx_chainer():
    """``onnx_chainer``, or ImportError naming the extra to install."""
    try:
        import onnx
    except ImportError:
        raise ImportError('exporting to ONNX needs the onnx package: pip '
                          'install -e ".[onnx]"')
    if not hasattr(onnx, 'mapping'):
        raise ImportError(
            'onnx %s is too new for Chainer\'s exporter, which reads '
            'onnx.mapping (gone after onnx %s): pip install onnx==%s'
            % (onnx.__version__, NEWEST_ONNX, NEWEST_ONNX))
    import onnx_chainer
    return onnx_chainer


def keep_used_initializers(model_proto):
    """Make the parameters constants: drop the initializers no node reads
    and take the rest out of the graph's inputs (in place).

    Returns:
        list: the names of the initializers dropped.
    """
    graph = model_proto.graph
    read = {name for node in graph.node for name in node.input}
    unused = [t.name for t in graph.initializer if t.name not in read]
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    constants = {t.name for t in kept} | set(unused)
    inputs = [i for i in graph.input if i.name not in constants]
    del graph.input[:]
    graph.input.extend(inputs)
    return unused


def to_onnx(chain, example, input_name, output_names, opset=OPSET):
    """ONNX ``ModelProto`` of ``chain`` run on ``example`` (batch symbolic)."""
    onnx_chainer = _onnx_chainer()
    import onnx

    with warnings.catch_warnings():
        # onnx_chainer's reads of onnx.mapping (see the module docstring)
        warnings.filterwarnings('ignore', message='.*mapping.*deprecated',
                                category=DeprecationWarning)
        model_proto = onnx_chainer.export(
            chain, example, filename=None, opset_version=opset,
            input_names=input_name, output_names=output_names,
            input_shapes=('batch',) + example.shape[1:])
    keep_used_initializers(model_proto)
    onnx.checker.check_model(model_proto)
    return model_proto


def save_onnx(model_proto, path):
    """Write ``model_proto`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(model_proto.SerializeToString())
    return path


def export(model, out_dir, logits=False, opset=OPSET):
    """Write ``encoder.onnx`` and ``decoder.onnx`` of ``model`` to ``out_dir``.

    Args:
        model (VAE): The model (on the CPU).
        out_dir: An existing folder.
        logits (bool): The decoder outputs logits instead of the
            Bernoulli means.
        opset (int): ONNX operator set version.

    Returns:
        list: the two paths.
    """
    xp = model.xp
    x = xp.zeros((1, model.n_in), dtype=xp.float32)  # (batch, n_in)
    z = xp.zeros((1, model.n_latent), dtype=xp.float32)  # (batch, n_latent)
    encoder = to_onnx(_Encoder(model), x, 'x', ['mu', 'ln_var'], opset)
    decoder = to_onnx(_Decoder(model, sigmoid=not logits), z, 'z',
                      ['logits' if logits else 'probs'], opset)
    return [save_onnx(encoder, os.path.join(out_dir, ENCODER)),
            save_onnx(decoder, os.path.join(out_dir, DECODER))]
