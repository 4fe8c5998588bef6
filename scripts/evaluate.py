#!/usr/bin/env python
"""Evaluate a VAE on MNIST: -ELBO, importance-sampled -log p(x), active units.

The command is vae/commands/evaluate.py (installed as ``vae-evaluate``); see
--help.
"""
import sys

from vae.commands.evaluate import main

if __name__ == '__main__':
    sys.exit(main())
