"""Few-shot adaptation methods, one module each, registered in ``FEWSHOT_METHODS`` (see ``base``)."""
