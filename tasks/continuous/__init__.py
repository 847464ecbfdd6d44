"""Continuous evaluation: what the event-driven flows do with a new object in the store.

- ``stages``: where a landed dataset goes, which model card an object under ``models/``
  stands for, the model leaderboard rows and the Prefect artifacts;
- ``report``: the model leaderboard's sections of ``trustflow report``.
"""
