"""Schemas, dataset loaders and the artifact store."""
