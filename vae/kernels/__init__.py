"""The arithmetic of a training step: the ELBO's terms on arrays (elbo);
the loss and its gradients as array code for NumPy or CuPy, and the one
function node that runs them (fused); Adam's arithmetic, the flat buffers
and the one-pass CPU Adam (adam); the GPU's CUDA-graph step (cuda_graph),
its element-wise kernels in C (elementwise) and its matrix products
(cublas)."""
