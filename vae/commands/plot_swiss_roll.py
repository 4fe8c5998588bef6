"""The manifold hypothesis figures of "Variational Autoencoder徹底解説".

    python scripts/plot_swiss_roll.py --out result/figures

Draws 1500 points of ``sklearn.datasets.make_swiss_roll`` (noise 0.05), as in
the article: swiss_roll.gif turns the 3-D roll around (36 frames, 10 degrees
apart) and 2D_swiss_roll.png shows the same points in the two coordinates of
the surface they lie on, the roll unrolled. These figures illustrate the
idea behind the VAE; they use no model.
"""
import argparse
import os
import sys

import matplotlib
matplotlib.use('Agg')  # before anything imports pyplot

import numpy  # NOQA: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # NOQA: E402
from matplotlib.figure import Figure  # NOQA: E402
from sklearn.datasets import make_swiss_roll  # NOQA: E402

from vae import cli, launch  # NOQA: E402
from vae.viz import figure_files  # NOQA: E402
from vae.atomic import save_png  # NOQA: E402

N_POINTS = 1500
NOISE = 0.05
N_FRAMES = 36
STEP_DEGREES = 10.0


def unroll_swiss_roll(t, points):
    """The swiss roll's intrinsic coordinates: (position along it, height).

    ``make_swiss_roll`` draws x = t cos t, y = height, z = t sin t, so the
    2-D manifold it lies on is spanned by t and y.

    Args:
        t: (N,) position along the roll, as ``make_swiss_roll`` returns it.
        points: (N, 3) the points.

    Returns:
        numpy.ndarray: (N, 2).
    """
    return numpy.stack([numpy.asarray(t), numpy.asarray(points)[:, 1]], axis=1)


def swiss_roll_unrolled(coords, color):
    """The swiss roll in its intrinsic coordinates (2D_swiss_roll.png).

    Args:
        coords: (N, 2) from :func:`unroll_swiss_roll`.
        color: (N,) colour value of each point (the position t).

    Returns:
        matplotlib.figure.Figure: one axes with the scatter.
    """
    coords = numpy.asarray(coords)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(coords[:, 0], coords[:, 1], c=color, cmap='Spectral', s=8)
    ax.set_xlabel('position along the roll (t)')
    ax.set_ylabel('height')
    ax.set_title('the swiss roll unrolled: a 2-D manifold')
    return fig


def swiss_roll_frames(points, color, n_frames=36, step=10.0, elev=10.0,
                      size=(5.0, 5.0), dpi=72):
    """The 3-D swiss roll seen from ``n_frames`` azimuths ``step``° apart.

    One figure is drawn again for each view, which is much cheaper than a
    figure per frame.

    Args:
        points: (N, 3).
        color: (N,) colour value of each point (the position t).
        n_frames (int): Number of views (the article: 36).
        step (float): Degrees of azimuth between views (the article: 10).
        elev (float): Elevation of the camera in degrees.
        size: Figure size in inches.
        dpi (int): Resolution.

    Yields:
        numpy.ndarray: (H, W, 3) uint8 RGB, H = size[1]*dpi, W = size[0]*dpi.
    """
    points = numpy.asarray(points)
    fig = Figure(figsize=size, dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1, projection='3d')
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=color,
               cmap='Spectral', s=6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    for k in range(n_frames):
        ax.view_init(elev=elev, azim=k * step)
        canvas.draw()
        yield numpy.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def swiss_roll_gif(points, color, path, n_frames=36, step=10.0,
                   duration=figure_files.FRAME_MS, progress=False):
    """The swiss roll rotating in 3-D (swiss_roll.gif).

    Args:
        points: (N, 3) from ``make_swiss_roll``.
        color: (N,) colour value of each point (the position t).
        path: The .gif to write.
        n_frames (int): Number of frames (the article: 36).
        step (float): Degrees of rotation between frames (the article: 10).
        duration (int): Milliseconds per frame.
        progress (bool): Show a progress bar.
    """
    figure_files.write_gif(swiss_roll_frames(points, color, n_frames, step),
                           path, n_frames, duration, progress)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--out', '-o', default=os.path.join('result', 'figures'),
                   type=cli.path,
                   help='output folder (default %(default)s)')
    p.add_argument('--seed', type=int, default=0,
                   help='random state of make_swiss_roll (default '
                   '%(default)s)')
    cli.add_progress_argument(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    launch.single_process_or_exit()
    try:
        cli.check_out_folder(args.out)
        points, t = make_swiss_roll(N_POINTS, noise=NOISE,
                                    random_state=args.seed)
        gif = os.path.join(args.out, 'swiss_roll.gif')
        swiss_roll_gif(points, t, gif, N_FRAMES, STEP_DEGREES,
                       progress=args.progress)
        print('wrote %s' % gif)
        png = os.path.join(args.out, '2D_swiss_roll.png')
        save_png(swiss_roll_unrolled(unroll_swiss_roll(t, points), t), png)
        print('wrote %s' % png)
    except OSError as e:  # WriteError included
        sys.exit('error: %s' % e)
    return 0

