"""llmcache operator: reconciles LLMCache resources and injects the caching sidecar into pods."""

__version__ = "0.1.0"
