"""Training: the Trainer and its one path chooser (trainer), the guarded
updater, the extensions, run folders, resume and model files."""
