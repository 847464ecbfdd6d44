"""Compact device models (SOI lateral BJTs down to 4 K), one module each, registered in
``COMPACT_MODELS`` (see ``base``); ``spice`` writes a fitted model as an ngspice subcircuit."""
