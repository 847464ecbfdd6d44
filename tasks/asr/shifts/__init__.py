"""Waveform shifts and augmentations, one module each, registered in ``SPEECH_SHIFTS`` (see ``base``)."""
