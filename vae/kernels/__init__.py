"""The arithmetic of a training step: the ELBO's terms (elbo), the fused
forward, backward and Adam on NumPy or CuPy (fused), its CPU node and flat
Adam (cpu), and its CUDA graph (cuda_graph)."""
