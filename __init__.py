"""trustflow: distributed safety and robustness evaluation of AI models.

The repository root is this package: ``flows/`` compose Prefect flows, ``tasks/`` do the
work on Ray, ``models/`` wrap model backends, ``data/`` holds schemas, loaders and the
artifact store, ``infra/`` starts and talks to services.
"""

__version__ = "0.1.0"
