#!/usr/bin/env python
"""Write the latent space explorer of a model: one self-contained page.

The command is vae/commands/export_web.py (installed as ``vae-export-web``);
see --help.
"""
import sys

from vae.commands.export_web import main

if __name__ == '__main__':
    sys.exit(main())
