#!/usr/bin/env python
"""The manifold hypothesis figures of "Variational Autoencoder徹底解説".

    python scripts/plot_swiss_roll.py --out result/figures

Draws 1500 points of ``sklearn.datasets.make_swiss_roll`` (noise 0.05), as in
the article: swiss_roll.gif turns the 3-D roll around (36 frames, 10 degrees
apart) and 2D_swiss_roll.png shows the same points in the two coordinates of
the surface they lie on, the roll unrolled.
"""
import argparse
import os
import sys

import matplotlib
matplotlib.use('Agg')  # before anything imports pyplot

from sklearn.datasets import make_swiss_roll  # NOQA: E402

from vae import figures  # NOQA: E402
from vae.serialization import save_png  # NOQA: E402

N_POINTS = 1500
NOISE = 0.05
N_FRAMES = 36
STEP_DEGREES = 10.0


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--out', '-o', default=os.path.join('result', 'figures'),
                   help='output folder (default %(default)s)')
    p.add_argument('--seed', type=int, default=0,
                   help='random state of make_swiss_roll (default '
                   '%(default)s)')
    p.add_argument('--no-progress', dest='progress', action='store_false',
                   help='hide the progress bar')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        sys.exit('error: cannot create %s: %s' % (args.out, e))
    points, t = make_swiss_roll(N_POINTS, noise=NOISE, random_state=args.seed)
    gif = os.path.join(args.out, 'swiss_roll.gif')
    figures.swiss_roll_gif(points, t, gif, N_FRAMES, STEP_DEGREES,
                           progress=args.progress)
    print('wrote %s' % gif)
    png = os.path.join(args.out, '2D_swiss_roll.png')
    fig = figures.swiss_roll_unrolled(figures.unroll_swiss_roll(t, points), t)
    save_png(fig, png)
    print('wrote %s' % png)
    return 0


if __name__ == '__main__':
    sys.exit(main())
