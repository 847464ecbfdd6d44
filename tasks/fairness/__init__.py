"""Fairness of text classifiers (issue 17): debiasing methods (``methods/``, a registry), the
training loop (``train``), fairness metrics with bootstrap intervals (``metrics``).

Phase 1 is the library; the flows, CLI and report only compose these (phase 2).
"""
