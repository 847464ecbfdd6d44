"""Few-shot adaptation that keeps robustness (issue 18): SAFE and the methods it is compared
with, on backbones with an attention-pooling head (``models/vision/attention_pool.py``).

Phase 1 is the library: k-shot episodes (``data``), cached feature maps (``features``), the
methods registry (``methods/``), episode evaluation (``evaluate``) and the robustness of an
adapted model (``robustness``). Flows, CLI and report compose these in phase 2.
"""
