"""Speech recognisers (issue 19): a small CTC phoneme model in PyTorch, its phone set and decoders."""
