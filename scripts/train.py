#!/usr/bin/env python
"""Train the article's VAE on MNIST with Chainer's Trainer.

The command is vae/commands/train.py (installed as ``vae-train``); see --help.
"""
import sys

from vae.commands.train import main

if __name__ == '__main__':
    sys.exit(main())
