"""The generic product-CSV importer's column mapping, light enough for the command line's help to read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Columns:
    """Column mapping for the generic product-CSV importer (defaults fit styles.csv)."""

    id: str = "id"
    title: str = "productDisplayName"
    category: str = "articleType"
    colour: str = "baseColour"
    brand: str | None = None
    gender: str = "gender"
    image: str | None = None
    description: str | None = None
    price: str | None = None
