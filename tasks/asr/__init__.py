"""Robust speech recognition (issue 19): shifts, training methods (WAPAT), WER/PER metrics."""
