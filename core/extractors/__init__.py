"""Feature extractors: one registry, one module per family (see registry.py)."""
from core.extractors.registry import (Extractor, MethodSpec, WeightsMissing, create_extractor, get_spec,
                                      list_methods, method_names)

__all__ = ["Extractor", "MethodSpec", "WeightsMissing", "create_extractor", "get_spec", "list_methods",
           "method_names"]
