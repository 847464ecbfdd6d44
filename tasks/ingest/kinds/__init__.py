"""Dataset kinds: one module per kind, each registering one ingester into ``INGESTERS``.

A new kind is a new module here with ``@INGESTERS.register("<kind>", options=...)``;
``trustflow ingest --kind <kind>`` finds it without any import list.
"""
