"""Evaluation: batched inference on the model's device (inference) and the
estimators of -ELBO, -log p(x) and active units (estimators)."""
