"""Export a model's encoder and decoder to ONNX with Chainer's onnx_chainer.

    python scripts/export_onnx.py --model result/model.npz --out onnx/
    python scripts/export_onnx.py --model result/model.npz --out onnx/ --logits

Writes OUT/encoder.onnx (x -> mu, ln_var) and OUT/decoder.onnx (z -> the
Bernoulli means "probs", or their "logits" with --logits); the batch axis is
symbolic. Needs the onnx extra: pip install -e ".[onnx]" (onnx, and
onnxruntime to run the files).
"""
import argparse
import sys

from vae import cli  # vae before anything imports chainer

from vae.export import onnx_export
from vae.atomic import prepare_outputs
from vae.train.model_files import ModelFileError, load_model


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    cli.add_model_arguments(p)
    cli.add_out_folder_argument(p)
    p.add_argument('--logits', action='store_true',
                   help='the decoder outputs logits, not Bernoulli means')
    p.add_argument('--opset', type=int, default=onnx_export.OPSET,
                   help='ONNX opset version (default %(default)s, the '
                   'newest onnx_chainer was tested with)')
    return p


#: Where Ctrl-C or SIGTERM leaves the work (its one line says so).
STOPPED = ('no file is left half-written; run the same command to export '
           'both again')


def run(args):
    """The work of the command, on the parsed ``args``."""
    problem = onnx_export.opset_problem(args.opset)
    if problem:
        sys.exit('error: %s' % problem)
    out = cli.out_folder(args.out)
    try:
        model = load_model(args.model, args.activation)
        prepare_outputs(out, [onnx_export.ENCODER, onnx_export.DECODER])
        paths = onnx_export.export(model, out, logits=args.logits,
                                   opset=args.opset)
    except (ModelFileError, ImportError, OSError) as e:
        sys.exit('error: %s' % e)
    for path in paths:
        print('wrote %s' % path)
    return 0


main = cli.one_process_main(build_parser, run, STOPPED)
