"""ASR training methods, one module each, registered in ``ASR_METHODS`` (see ``base``)."""
