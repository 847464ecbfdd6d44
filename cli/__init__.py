"""The ``trustflow`` command line."""
