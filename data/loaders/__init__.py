"""Dataset loaders: turn a source on disk into Arrow tables, validating as they go."""
