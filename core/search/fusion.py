"""A method as a person or a client names it: one method ('dino') or several fused with weights
('efficientnet_lite0=0.7,color_hist=0.3'). The CLI's `--method`, the API's `method=` and the app read
it through `parse_methods`, so the same text means the same search in every face."""

from __future__ import annotations

from core.methods.hybrid import parse_weights


def parse_methods(text: str) -> str | dict[str, float]:
    """'dino' -> 'dino'; 'dino=0.7,color_hist=0.3' -> {'dino': 0.7, 'color_hist': 0.3} (normalised to sum to 1).
    ValueError naming the bad part of a weighted list."""
    return parse_weights(text) if "=" in text else text.strip()
