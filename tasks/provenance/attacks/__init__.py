"""Ownership attacks on a (fingerprinted) classifier: one module per attack, registered in
``OWNERSHIP_ATTACKS`` (``base.py``) and found automatically."""
