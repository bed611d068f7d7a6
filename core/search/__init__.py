"""Finding neighbours: a method's space in a catalog (space.py: resolved once, carried by every flow),
neighbour backends by registered name (backends.py: exact, exact-subset, Annoy), Annoy index files,
queries by item, photo or text with filters and fusion, near-duplicates, and the process-wide
caches they read through."""
