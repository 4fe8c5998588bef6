#!/usr/bin/env python
"""The manifold hypothesis figures of "Variational Autoencoder徹底解説".

The command is vae/commands/plot_swiss_roll.py (installed as
``vae-swiss-roll``); see --help.
"""
import sys

from vae.commands.plot_swiss_roll import main

if __name__ == '__main__':
    sys.exit(main())
