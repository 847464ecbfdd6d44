"""Fairness text data: readers for RedditBias, BUG and users' tables, the group-term lists
behind counterfactual augmentation, and the EEC-style template set (issue 17)."""
