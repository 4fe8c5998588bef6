"""Write the latent space explorer of a model: one self-contained page.

    python scripts/export_web.py --model result/z2/model.npz --out site/
    python scripts/export_web.py -m result/model.npz -o site/ --dtype float32

--out/index.html opens from disk in any browser: no server, no network. It
holds the decoder's weights and runs the decoder in JavaScript exactly as
VAE.decode computes it. A 2-D model gets the latent plane (the means of 5000
test images, coloured by digit; the pointer is z) and the 25x25 map as an
overlay; every model gets one slider per latent dimension, samples from the
prior, the interpolation between the first test images of two digits, and
300 test images beside their reconstructions.

--dtype float16 (the default) halves the page; the largest change of a
decoded pixel it brings, measured over the z the page shows (its test codes,
samples of the prior and of the sliders' range, the map), is printed and
stated on the page. --dtype float32 embeds the weights unrounded.
"""
import argparse
import os
import sys

from vae import cli  # vae before anything imports chainer

from vae import data as mnist

from vae.export import explorer as explorer_lib
from vae.atomic import prepare_outputs, write_text
from vae.train.model_files import ModelFileError, load_model


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    cli.add_model_arguments(p)
    cli.add_out_folder_argument(p, '; the page is OUT/%s' % explorer_lib.PAGE)
    cli.add_data_dir_argument(p)
    p.add_argument('--dtype', choices=explorer_lib.DTYPES, default='float16',
                   help='storage of the decoder weights (default '
                   '%(default)s)')
    cli.add_progress_argument(p, 'the progress bar of a download')
    return p


#: Where Ctrl-C or SIGTERM leaves the work (its one line says so).
STOPPED = ('no page is left half-written; run the same command to export it '
           'again')


def run(args):
    """The work of the command, on the parsed ``args``."""
    out = cli.out_folder(args.out)
    try:
        model = load_model(args.model, args.activation)
        if model.n_in != mnist.N_PIXELS:
            sys.exit('error: the explorer draws 28x28 images; %s has n_in = '
                     '%d' % (args.model, model.n_in))
        prepare_outputs(out, [explorer_lib.PAGE])
        test, = mnist.load_mnist(args.data_dir, progress=args.progress,
                                    splits=('test',))
        page, error, n_probes = explorer_lib.build_page(
            model, test.images, test.labels, args.dtype,
            title=os.path.basename(os.path.dirname(
                os.path.abspath(args.model))) or None)
        path = explorer_lib.page_path(out)
        write_text(path, page)
    except (ModelFileError, mnist.MNISTError, OSError, ValueError) as e:
        sys.exit('error: %s' % e)
    size = os.path.getsize(path)
    print('wrote %s (%.2f MB; %d-D latent, decoder weights %s)'
          % (path, size / 1e6, model.n_latent, args.dtype))
    if error is not None:
        print('float16 weights changed a decoded pixel by at most %.2e '
              'against float32, over %d decodes of the z the page shows'
              % (error, n_probes))
    return 0


main = cli.one_process_main(build_parser, run, STOPPED)
