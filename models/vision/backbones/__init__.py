"""Few-shot backbones, one module each, registered in ``BACKBONES`` (models/vision/attention_pool.py)."""
