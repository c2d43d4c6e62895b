"""What a model's tokens cost, for the money-saved metric and the judge's own spend."""

from __future__ import annotations

from collections.abc import Mapping

from llmcache_sidecar.config import PriceSettings


def price_of(prices: Mapping[str, PriceSettings], model: str) -> PriceSettings | None:
    """The price entry for `model`: exact, else the longest configured prefix (dated model names)."""
    found = prices.get(model)
    if found is not None:
        return found
    best = max((name for name in prices if model.startswith(name)), key=len, default=None)
    return prices[best] if best is not None else None


class PriceBook:
    """`price_of`, remembered per model name: a hit must not scan the price table."""

    __slots__ = ("_known", "_prices")

    def __init__(self, prices: Mapping[str, PriceSettings]) -> None:
        self._prices = prices
        self._known: dict[str, PriceSettings | None] = {}

    def get(self, model: str) -> PriceSettings | None:
        try:
            return self._known[model]
        except KeyError:
            if len(self._known) >= 1024:  # model names come from requests: keep it bounded
                self._known.clear()
            found = self._known[model] = price_of(self._prices, model)
            return found
