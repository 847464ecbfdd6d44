"""S-Eval / LLM components (issue 3)."""
