"""The commands, each a ``main(argv=None)`` that returns an exit status:
``scripts/<name>.py`` runs them from a clone, and ``pip install`` puts them on
the PATH as ``vae-train``, ``vae-evaluate``, ``vae-plot`` (plot_latent),
``vae-swiss-roll``, ``vae-export-web`` and ``vae-export-onnx``."""
