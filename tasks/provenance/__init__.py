"""Model provenance by frequency-domain conv-filter fingerprints (arXiv 2505.01007): training
with the fingerprint (``train.py``), ownership attacks (``attacks/``, a registry), the
function-preserving channel maps they use (``links.py``) and verification / source tracing
(``verify.py``). See docs/pipelines/provenance.md."""
