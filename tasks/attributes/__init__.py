"""Attribute robustness of image classifiers, ImageNet-E style (arXiv 2303.17096)."""
