"""Lookalike core library: catalog, importers, extractors, search, labels, export."""
