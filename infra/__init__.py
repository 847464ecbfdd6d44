"""Starts and talks to services: object store, Prefect server, Ray, event relay."""
