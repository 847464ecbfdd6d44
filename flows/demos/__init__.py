"""The demo's pipelines, one module each, registered in ``base.DEMO_PIPELINES``."""
