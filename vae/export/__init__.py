"""Exports of a trained model: the explorer page (explorer) and ONNX
(onnx_export)."""
