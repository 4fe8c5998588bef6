#!/usr/bin/env python
"""Export a model's encoder and decoder to ONNX with Chainer's onnx_chainer.

The command is vae/commands/export_onnx.py (installed as ``vae-export-onnx``);
see --help.
"""
import sys

from vae.commands.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
