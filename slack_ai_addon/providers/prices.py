"""USD prices per million tokens (input, output) for cost tracking.

Matched on the model that actually ran (`response.model`), by longest prefix, so dated
snapshots ("gpt-4o-mini-2024-07-18") find their family. Local providers cost nothing.
Prices are list prices at the time of writing. An unknown model costs 0 in `cost_usd`;
`cost_known(model)` is False for it, so a panel can say "cost unknown" rather than "free".
"""

from __future__ import annotations

# (input, output) USD per 1M tokens.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "meta-llama/meta-llama-3.1-8b-instruct": (0.02, 0.05),
    "qwen/qwen3-32b": (0.10, 0.30),
}


def price_for(model: str) -> tuple[float, float] | None:
    """(input, output) per 1M tokens by longest matching prefix, or None."""
    low = model.lower()
    best: str | None = None
    for prefix in PRICES_PER_MTOK:
        if low.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PRICES_PER_MTOK[best] if best else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int, *, local: bool = False) -> float:
    """Cost of one call in USD; 0 for local providers and unknown models."""
    if local:
        return 0.0
    price = price_for(model)
    if price is None:
        return 0.0
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)


def cost_known(model: str, *, local: bool = False) -> bool:
    """Whether `cost_usd` for this model is a real figure (local: free) and not an unknown 0."""
    return local or price_for(model) is not None
