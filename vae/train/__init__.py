"""Training: the Trainer and its one path chooser (trainer), the guarded
updater (updater) and the CUDA-graph path's (graph_updater), the extensions,
run folders, resume and model files."""
