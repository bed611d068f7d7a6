"""Feature extraction: what a method is (spec.py), every built-in one (specs.py) and a catalog's tuned
heads (tuned.py) in the registry (registry.py), the extractor contract (base.py), how vectors are
compared (distances.py), where models run (devices.py), and one module per family."""

from core.methods.base import DerivedExtractor, Extractor, ImageExtractor, TextExtractor
from core.methods.registry import (
    MethodSpec,
    UnknownMethod,
    WeightsMissing,
    build_extractor,
    create_extractor,
    get_spec,
    list_methods,
    preprocessing,
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
    "preprocessing",
]

from core.methods import specs, tuned  # noqa: E402, F401 - importing them registers the methods
