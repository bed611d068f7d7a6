"""Feature extractors: every method's spec in specs.py, the contract in base.py, one module per family."""

from core.methods.base import DerivedExtractor, Extractor, ImageExtractor, TextExtractor
from core.methods.registry import (
    MethodSpec,
    UnknownMethod,
    WeightsMissing,
    build_extractor,
    create_extractor,
    get_spec,
    list_methods,
)

__all__ = [
    "DerivedExtractor",
    "Extractor",
    "ImageExtractor",
    "MethodSpec",
    "TextExtractor",
    "UnknownMethod",
    "WeightsMissing",
    "build_extractor",
    "create_extractor",
    "get_spec",
    "list_methods",
]
