"""The catalog's storage: the SQLite handle and migrations, items and their photos, imports and
downloads, filters, and the stored vectors of every method."""
