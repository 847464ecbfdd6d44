"""CTC phoneme recognisers, one module each, registered in ``ASR_MODELS`` (models/speech/ctc.py)."""
