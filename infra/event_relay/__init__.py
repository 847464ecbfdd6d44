"""Storage-event relay: object-store changes become Prefect events, each announced once.

A source (SeaweedFS filer log, S3 notifications via SQS, a local directory) yields
``ObjectEvent`` batches with a resumable position; the relay filters them, drops what its
SQLite state says was already announced, emits the rest to Prefect and only then records
them. Delivery is at-least-once; a deterministic event id lets Prefect drop a re-emit.
"""
