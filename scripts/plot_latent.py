#!/usr/bin/env python
"""Regenerate the figures of "Variational Autoencoder徹底解説" from a model.

The command is vae/commands/plot_latent.py (installed as ``vae-plot``); see
--help.
"""
import sys

from vae.commands.plot_latent import main

if __name__ == '__main__':
    sys.exit(main())
