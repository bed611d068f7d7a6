"""Writing and reading files safely: atomic replacement, refused output paths, CSV formula
neutralising, text encodings, one-line failure messages, import reports."""
