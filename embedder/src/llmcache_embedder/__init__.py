"""llmcache-embedder: an OpenAI-compatible embeddings server for llmcache."""

from llmcache_embedder.model import (
    Encoder,
    HashEncoder,
    MiniLMEncoder,
    TokenCounter,
)

__all__ = ["Encoder", "HashEncoder", "MiniLMEncoder", "TokenCounter", "__version__"]

__version__ = "0.1.0"
