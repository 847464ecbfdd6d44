"""Debiasing methods, one module each, registered in ``FAIRNESS_METHODS`` (see ``base``)."""
