"""Finding neighbours: Annoy index files, the exact and Annoy neighbour backends, queries by item,
photo or text, fusion, near-duplicates, and the process-wide caches they read through."""
