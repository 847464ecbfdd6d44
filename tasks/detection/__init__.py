"""Object-detection evaluation: COCO bbox metrics and robustness summaries (COCO-O style)."""
