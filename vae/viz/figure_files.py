"""The figures that are files rather than matplotlib ``Figure`` objects:
the article's animated GIFs (Pillow) and the files of TensorBoard's
embedding projector.

Pillow merges a GIF frame identical to the one before it into that frame
(adding up their durations), so a file can hold fewer frames than were
given while its animation, frame times included, is the same.
"""
import os

import numpy
from PIL import Image
from tqdm import tqdm

from vae.atomic import atomic_path
from vae.viz.figures import as_images, tile_images, to_uint8, upscale

#: Milliseconds a GIF frame is shown (GIF counts in hundredths of a second).
FRAME_MS = 100
#: Sub-folder of a figures folder that holds the projector's files.
PROJECTOR = 'projector'


def write_gif(frames, path, n_frames, duration=FRAME_MS, progress=False,
              desc=None):
    """Write 8-bit frames as a looping GIF, atomically.

    The file may hold fewer frames than were given (see the module
    docstring).

    Args:
        frames: Iterable of (H, W) uint8 gray or (H, W, 3) uint8 RGB
            arrays; a generator keeps only one frame in memory.
        path: The .gif to write.
        n_frames (int): Number of frames (for the progress bar).
        duration (int): Milliseconds per frame.
        progress (bool): Show a progress bar as the frames are encoded.
        desc (str): Label of the progress bar.
    """
    frames = iter(frames)
    first = Image.fromarray(next(frames))
    # Pillow pulls the appended frames one by one while it encodes, so the
    # bar follows the real work.
    rest = tqdm((Image.fromarray(f) for f in frames), total=n_frames,
                initial=1, desc=desc or os.path.basename(path),
                disable=not progress, leave=False)
    with atomic_path(path) as tmp:
        first.save(tmp, format='GIF', save_all=True, append_images=rest,
                   duration=duration, loop=0)


def interpolation_frames(frames, scale=4):
    """Interpolation decodes as enlarged 8-bit frames: (T, 28s, 28s)."""
    return upscale(to_uint8(as_images(frames)), scale)  # (T, 28s, 28s)


def interpolation_gif(frames, path, scale=4, duration=FRAME_MS,
                      progress=False):
    """The interpolation as an animated GIF (vae_0to7_dim_2.gif).

    Args:
        frames: (T, 784) decodes along the path (the article: 81).
        path: The .gif to write.
        scale (int): Each pixel becomes a scale x scale block.
        duration (int): Milliseconds per frame.
        progress (bool): Show a progress bar.
    """
    images = interpolation_frames(frames, scale)  # (T, 28s, 28s)
    write_gif(images, path, len(images), duration, progress)


def all_pairs_montage(images, pad=2):
    """One all-pairs frame: a K x K grid of decodes, as 8-bit gray.

    Args:
        images: (K, K, 784) decodes; row i starts at class i, column j
            ends at class j.
        pad (int): Gray pixels between cells.

    Returns:
        numpy.ndarray: (K*28 + (K-1)*pad, same), uint8.
    """
    images = as_images(images)  # (K, K, 28, 28)
    k = images.shape[0]
    montage = tile_images(images.reshape((k * k,) + images.shape[2:]),
                          k, k, pad=pad, fill=0.5)  # (K*K, 28, 28) tiled
    return to_uint8(montage)


def quantize(image, levels):
    """Round a uint8 image to ``levels`` evenly spaced gray values.

    GIF's LZW coding compresses smooth gray poorly; 32 levels look the same
    for MNIST decodes and make the all-pairs GIF about 2.5x smaller.
    """
    step = 255.0 / (levels - 1)
    levels_of = numpy.round(numpy.asarray(image) / step)
    return numpy.round(levels_of * step).astype(numpy.uint8)


def all_pairs_gif(frames, path, scale=1, pad=2, duration=FRAME_MS,
                  progress=False, levels=32):
    """Every start digit to every end digit at once (vae_all_9to9.gif).

    Args:
        frames: (T, K, K, 784) decodes of :func:`all_pairs_latents`
            (the article: T = 80, t there and back, K = 10).
        path: The .gif to write.
        scale (int): Each pixel becomes a scale x scale block.
        pad (int): Gray pixels between cells (before scaling).
        duration (int): Milliseconds per frame.
        progress (bool): Show a progress bar.
        levels (int): Gray levels kept (see :func:`quantize`).
    """
    frames = numpy.asarray(frames)
    montages = (quantize(upscale(all_pairs_montage(f, pad), scale), levels)
                for f in frames)
    write_gif(montages, path, len(frames), duration, progress)


def write_projector_tsv(mu, labels, out_dir):
    """Files for TensorBoard's embedding projector.

    ``vectors.tsv`` holds one latent mean per line, tab-separated;
    ``metadata.tsv`` the matching labels, one per line and without a header
    (the projector's format for a single metadata column). Both load with
    the "Load" button of https://projector.tensorflow.org;
    ``projector_config.pbtxt`` lets ``tensorboard --logdir <out_dir>`` find
    them.

    Args:
        mu: (N, D) latent means.
        labels: (N,) their digits.
        out_dir: Folder to write into (created if needed).

    Returns:
        tuple: paths of ``vectors.tsv`` and ``metadata.tsv``.
    """
    mu = numpy.asarray(mu)
    labels = numpy.asarray(labels)
    if len(mu) != len(labels):
        raise ValueError('%d vectors but %d labels' % (len(mu), len(labels)))
    os.makedirs(out_dir, exist_ok=True)
    vectors = os.path.join(out_dir, 'vectors.tsv')
    metadata = os.path.join(out_dir, 'metadata.tsv')
    with atomic_path(vectors) as tmp:
        numpy.savetxt(tmp, mu, fmt='%.6g', delimiter='\t')
    with atomic_path(metadata) as tmp:
        numpy.savetxt(tmp, labels.reshape(-1, 1), fmt='%d')  # (N, 1)
    with atomic_path(os.path.join(out_dir, 'projector_config.pbtxt')) as tmp:
        with open(tmp, 'w') as f:
            f.write('embeddings {\n  tensor_name: "latent_mu"\n'
                    '  tensor_path: "vectors.tsv"\n'
                    '  metadata_path: "metadata.tsv"\n}\n')
    return vectors, metadata
