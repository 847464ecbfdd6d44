"""Text classifiers for the fairness pipeline: a BERT-family encoder plus a linear head."""
