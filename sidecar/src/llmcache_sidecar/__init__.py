"""llmcache sidecar: an exact and semantic cache proxy for LLM APIs."""

__version__ = "0.1.0"
