"""Image classification sets for robustness evaluation (arrays in [0, 1], NCHW)."""

from trustflow.data.vision.datasets import ArrayDataset, load_dataset

__all__ = ["ArrayDataset", "load_dataset"]
