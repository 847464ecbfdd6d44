"""Model backends (LLM, critic, classifier, detector): planned in the pipeline issues."""
