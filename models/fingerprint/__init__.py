"""Frequency-domain fingerprints of conv filters (arXiv 2505.01007): the transform
(``transform.py``) and the fingerprint module inserted into a classifier (``module.py``)."""
