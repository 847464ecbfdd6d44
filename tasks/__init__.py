"""Prefect tasks that do the work; each launches one coarse Ray job."""
