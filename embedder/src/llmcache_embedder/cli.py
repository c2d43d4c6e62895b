"""`llmcache-embedder`: serve an encoder over HTTP (all-MiniLM-L6-v2, or the hash test encoder)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from aiohttp import web

from llmcache_embedder.app import DEFAULT_MAX_BATCH_TEXTS, DEFAULT_MAX_INPUTS, EncoderFactory, create_app
from llmcache_embedder.model import MINILM_MODEL_NAME, HashEncoder, MiniLMEncoder


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmcache-embedder", description="OpenAI-compatible embeddings server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--encoder",
        choices=("minilm", "hash"),
        default="minilm",
        help="minilm: all-MiniLM-L6-v2 (needs the 'minilm' extra); hash: deterministic test encoder",
    )
    p.add_argument("--model-name", default=None, help="model id clients must send (default depends on --encoder)")
    p.add_argument("--hash-dimensions", type=int, default=64)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a small shared CPU, 2+ threads spin and get slower; "
        "0 keeps torch's own default)",
    )
    p.add_argument("--max-batch-texts", type=int, default=DEFAULT_MAX_BATCH_TEXTS)
    p.add_argument("--max-inputs", type=int, default=DEFAULT_MAX_INPUTS)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    factory: EncoderFactory
    if args.encoder == "hash":
        dims: int = args.hash_dimensions
        factory = lambda: HashEncoder(dims)  # noqa: E731
        name = args.model_name or f"hash-bow-{dims}"
    else:
        threads: int | None = args.threads if args.threads > 0 else None
        factory = lambda: MiniLMEncoder(num_threads=threads)  # noqa: E731
        name = args.model_name or MINILM_MODEL_NAME
    app = create_app(factory, name, max_batch_texts=args.max_batch_texts, max_inputs=args.max_inputs)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
