"""The latent-space explorer: one self-contained HTML page per model.

The page (``index.html``, written by ``scripts/export_web.py``) carries the
decoder's weights and a few thousand encoded test images, and runs the
decoder in plain JavaScript, exactly as :meth:`vae.model.VAE.decode` computes
it: three dense layers ``W x + b``, the model's activation after the first
two, the sigmoid after the last. It needs no server and no network: it opens
from disk, and its Content-Security-Policy forbids every fetch.

What it shows:

- for a 2-D model, the latent plane with the means of the first 5000 test
  images coloured by label (``scatter.png``'s rainbow colormap, its colours
  computed here); the pointer over the plane is z, and its decode is drawn
  live; the 25x25 map of decodes over [-2, 2]^2 (``2dim_map.png``, tiles as
  :func:`vae.viz.figures.latent_grid` orders them) as an overlay;
- for every model, one slider per latent dimension, a sample from the prior,
  and the straight line from the first test image of one digit to the first
  of another (:func:`vae.viz.figures.first_of_each_class`) with a slider for t;
- test images beside their reconstructions decode(mu), mu computed here by
  the encoder and decoded on the page by the same JavaScript decoder.

The weights are stored as little-endian float32 or float16, base64-encoded.
float16 halves the page; the error it brings is measured here
(:func:`float16_error`) and stated on the page and by the script.

The HTML, CSS and JavaScript are package files under ``web_assets/``; this
module fills in the data and the CSP hashes of the inline style and script.
"""
import base64
import copy
import hashlib
import html
import json
import os
from importlib import resources
from typing import NamedTuple

import chainer
import numpy
from matplotlib import colormaps

from vae.viz import figures

#: Test images whose latent means are drawn on the plane (as scatter.png).

from vae.eval import inference

#: Test images whose latent means are drawn on the plane (as scatter.png).
N_SCATTER = 5000
#: Test images embedded with their latent means for the reconstructions.
N_RECONSTRUCTIONS = 300
#: Tiles per side of the map overlay and the z they span (as 2dim_map.png).
MAP_TILES = 25
MAP_EXTENT = (-2.0, 2.0)
#: Interpolation: t moves in steps of 1/80 (81 values, the article's GIF).
T_STEPS = 80
#: Default ends of the interpolation (the article's 0 -> 7).
START_DIGIT, END_DIGIT = 0, 7
#: Samples of the prior, and uniform samples of the sliders' box, among the
#: z over which the float16 error is measured.
N_PRIOR_PROBES = N_UNIFORM_PROBES = 1000
#: Slider range of a latent dimension (+-) for models of more than 2-D,
#: widened to hold every embedded latent mean.
SLIDER_EXTENT = 3.0
DTYPES = ('float32', 'float16')
#: The page's decoder: the VAE's links, in the order decode applies them.
DECODER_LINKS = ('ld1', 'ld2', 'ld3')
PAGE = 'index.html'
_ASSETS = 'web_assets'


class ExplorerData(NamedTuple):
    """The arrays a page is made of (all on the CPU)."""

    images: numpy.ndarray  # (N_RECONSTRUCTIONS, 784) test images in [0, 1]
    labels: numpy.ndarray  # (N_RECONSTRUCTIONS,)
    mu: numpy.ndarray  # (N_RECONSTRUCTIONS, n_latent) their latent means
    digit_images: numpy.ndarray  # (10, 784) first test image of each digit
    digit_mu: numpy.ndarray  # (10, n_latent) their latent means
    scatter_mu: numpy.ndarray  # (N_SCATTER, 2) for a 2-D model, else None
    scatter_labels: numpy.ndarray  # (N_SCATTER,) or None


def collect(model, images, labels, n_scatter=N_SCATTER,
            n_reconstructions=N_RECONSTRUCTIONS):
    """Encode the test images a page shows.

    Args:
        model (VAE): The model, on any device.
        images: (N, 784) test images; labels: (N,) their digits, with
            every digit 0-9 present (the interpolation's ends).
        n_scatter (int): Images on the plane of a 2-D model.
        n_reconstructions (int): Images embedded with their means.

    Returns:
        ExplorerData
    """
    images = numpy.asarray(images, dtype=numpy.float32)
    labels = numpy.asarray(labels)
    first = figures.first_of_each_class(labels)  # (10,)
    n = max(n_scatter if model.n_latent == 2 else 0, n_reconstructions)
    mu, _ = inference.encode(model, images[:n])  # (n, L)
    digit_mu, _ = inference.encode(model, images[first])  # (10, L)
    scatter_mu = scatter_labels = None
    if model.n_latent == 2:
        scatter_mu, scatter_labels = mu[:n_scatter], labels[:n_scatter]
    k = n_reconstructions
    return ExplorerData(images[:k], labels[:k], mu[:k], images[first],
                        digit_mu, scatter_mu, scatter_labels)


def decoder_layers(model):
    """``[(W, b), ...]`` of the decoder's links, float32 NumPy arrays.

    W is (out, in), as ``chainer.links.Linear`` holds it: ``y = W x + b``.
    """
    cpu = chainer.backend.CpuDevice()
    return [tuple(numpy.asarray(cpu.send(param.array), dtype=numpy.float32)
                  for param in (getattr(model, name).W,
                                getattr(model, name).b))
            for name in DECODER_LINKS]


def encode_array(array, dtype):
    """Base64 of ``array`` as little-endian ``dtype`` bytes, row-major."""
    little = numpy.ascontiguousarray(array, dtype=numpy.dtype(dtype)
                                     .newbyteorder('<'))
    return base64.b64encode(little.tobytes()).decode('ascii')


def probe_latents(latent_means, extent, seed=0):
    """The z over which :func:`float16_error` is measured.

    The z a page decodes: the embedded latent means, :data:`N_PRIOR_PROBES`
    samples of the prior (its button), :data:`N_UNIFORM_PROBES` uniform
    samples of the box [-extent, extent]^n the sliders (and the plane) span,
    and for a 2-D model the map's grid. (N, n_latent) float32.
    """
    n_latent = latent_means[0].shape[1]
    rng = numpy.random.RandomState(seed)
    parts = [numpy.asarray(m, dtype=numpy.float32) for m in latent_means]
    parts.append(rng.standard_normal((N_PRIOR_PROBES, n_latent)))
    parts.append(rng.uniform(-extent, extent, (N_UNIFORM_PROBES, n_latent)))
    if n_latent == 2:
        parts.append(figures.latent_grid(MAP_TILES, MAP_EXTENT))
    return numpy.concatenate(parts).astype(numpy.float32)


def with_float16_decoder(model):
    """A CPU copy of ``model`` whose decoder weights are rounded to float16.

    It computes what a page with float16 weights computes (up to the
    page's float64 arithmetic).

    Raises:
        ValueError: A weight does not fit float16 (beyond +-65504).
    """
    twin = copy.deepcopy(model)
    twin.to_cpu()
    for name in DECODER_LINKS:
        for param in getattr(twin, name).params():
            rounded = param.array.astype(numpy.float16)
            if not numpy.isfinite(rounded).all():
                raise ValueError('%s/%s has weights beyond the float16 range; '
                                 'use float32' % (name, param.name))
            param.array[...] = rounded.astype(numpy.float32)
    return twin


def float16_error(model, z):
    """Largest |difference| of a decoded pixel (a Bernoulli mean) when the
    decoder's weights are rounded to float16, over the rows of ``z``."""
    exact = inference.decode(model, z)
    rounded = inference.decode(with_float16_decoder(model), z)
    return float(numpy.abs(rounded - exact).max())


def rainbow_palette(n=10):
    """``scatter.png``'s colours of labels 0..n-1 as '#rrggbb' strings.

    Matplotlib's scatter normalises the labels 0..9 to [0, 1], so label c
    gets the colormap at c / (n - 1).
    """
    cmap = colormaps[figures.SCATTER_CMAP]
    palette = []
    for c in range(n):
        r, g, b, _ = cmap(c / (n - 1))
        palette.append('#%02x%02x%02x' % tuple(
            int(round(255 * v)) for v in (r, g, b)))
    return palette


def plane_extent(scatter_mu):
    """Half-width R of the plane [-R, R]^2: every point and the whole map,
    with a margin, rounded up to a half."""
    half_tile = (MAP_EXTENT[1] - MAP_EXTENT[0]) / (MAP_TILES - 1) / 2
    reach = max(float(numpy.abs(scatter_mu).max()), MAP_EXTENT[1] + half_tile)
    return float(numpy.ceil(reach * 1.05 * 2) / 2)


def slider_extent(data):
    """Half-width of every z slider's range: the plane's for a 2-D model,
    else :data:`SLIDER_EXTENT` widened to hold every embedded mean."""
    if data.scatter_mu is not None:
        return plane_extent(data.scatter_mu)
    reach = max(float(numpy.abs(m).max()) for m in (data.mu, data.digit_mu))
    return float(max(SLIDER_EXTENT, numpy.ceil(reach)))


def _latent_means(data):
    means = [data.mu, data.digit_mu]
    if data.scatter_mu is not None:
        means.append(data.scatter_mu)
    return means


def page_data(model, data, dtype='float16', error=None, n_probes=None,
              title=None):
    """Everything the page's script reads, as a JSON-ready dict.

    Args:
        model (VAE): The model (its decoder is embedded).
        data (ExplorerData): From :func:`collect`.
        dtype (str): 'float32' or 'float16', the weights' storage.
        error (float): With float16, the measured largest pixel error.
        n_probes (int): The number of z it was measured over.
        title (str): Shown as the page's subtitle (e.g. the model's path).
    """
    if dtype not in DTYPES:
        raise ValueError('dtype must be one of %s, got %r' % (DTYPES, dtype))
    if model.activation is None:
        raise ValueError('the page knows only the activations of '
                         'vae.ACTIVATIONS, not %r' % (model.act_func,))
    layers = [{'shape': list(W.shape), 'W': encode_array(W, dtype),
               'b': encode_array(b, dtype)}
              for W, b in decoder_layers(model)]
    result = {
        'model': {'n_in': model.n_in, 'n_latent': model.n_latent,
                  'n_h': model.n_h, 'activation': model.activation,
                  'title': title or ''},
        'weights': {'dtype': dtype, 'layers': layers,
                    'max_error': error, 'n_probes': n_probes},
        'palette': rainbow_palette(),
        'digits': {'images': encode_array(figures.to_uint8(data.digit_images),
                                          'uint8'),
                   'mu': encode_array(data.digit_mu, 'float32')},
        'reconstructions': {
            'count': len(data.images),
            'images': encode_array(figures.to_uint8(data.images), 'uint8'),
            'labels': [int(c) for c in data.labels],
            'mu': encode_array(data.mu, 'float32')},
        'interpolation': {'start': START_DIGIT, 'end': END_DIGIT,
                          'steps': T_STEPS},
    }
    result['slider_extent'] = slider_extent(data)
    if model.n_latent == 2:
        result['plane'] = {
            'extent': result['slider_extent'],
            'count': len(data.scatter_mu),
            'mu': encode_array(data.scatter_mu, 'float32'),
            'labels': encode_array(data.scatter_labels, 'uint8'),
            'map': {'tiles': MAP_TILES, 'extent': list(MAP_EXTENT)}}
    return result


def _asset(name):
    return resources.files(__package__).joinpath(_ASSETS, name).read_text(
        encoding='utf-8')


def _csp_hash(text):
    digest = hashlib.sha256(text.encode('utf-8')).digest()
    return "'sha256-%s'" % base64.b64encode(digest).decode('ascii')


def _json_for_script(value):
    """JSON that cannot close the <script> element holding it."""
    text = json.dumps(value, separators=(',', ':'), allow_nan=False)
    return (text.replace('<', '\\u003c').replace('>', '\\u003e')
            .replace('&', '\\u0026'))


def content_security_policy(style, script):
    """No fetch of any kind; only the page's own style and script run."""
    return ("default-src 'none'; img-src data:; style-src %s; script-src %s; "
            "base-uri 'none'; form-action 'none'"
            % (_csp_hash(style), _csp_hash(script)))


def render_page(data):
    """The page's HTML for :func:`page_data`'s dict."""
    style, script = _asset('explorer.css'), _asset('explorer.js')
    model = data['model']
    sizes = '%d-%d-%d-%d' % (model['n_in'], model['n_h'], model['n_h'],
                             model['n_latent'])
    fields = {
        # in a double-quoted attribute: its single quotes stay as they are
        'CSP': html.escape(content_security_policy(style, script),
                           quote=False).replace('"', '&quot;'),
        'TITLE': html.escape('VAE latent space explorer (%s)' % sizes),
        'CSS': style,
        'DATA': _json_for_script(data),
        'JS': script,
    }
    page = _asset('explorer.html')
    for key, value in fields.items():
        marker = '{{%s}}' % key
        if page.count(marker) != 1:
            raise RuntimeError('template: %s appears %d times'
                               % (marker, page.count(marker)))
        page = page.replace(marker, value)
    return page


def build_page(model, images, labels, dtype='float16', title=None):
    """Collect, measure and render a page for ``model``.

    Returns:
        tuple: ``(html, error, n_probes)``; ``error`` (float16 only, else
        ``None``) is the largest pixel error the float16 weights bring
        over ``n_probes`` decodes.
    """
    data = collect(model, images, labels)
    error = n_probes = None
    if dtype == 'float16':
        z = probe_latents(_latent_means(data), slider_extent(data))
        error, n_probes = float16_error(model, z), len(z)
    page = page_data(model, data, dtype, error, n_probes, title)
    return render_page(page), error, n_probes


def page_path(out_dir):
    """Where the page of ``out_dir`` goes."""
    return os.path.join(os.fspath(out_dir), PAGE)
