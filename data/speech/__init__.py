"""Speech utterances (issue 19): espeak-ng synthesis, pocketsphinx-testdata, LibriSpeech-style folders."""
