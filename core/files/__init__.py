"""Writing and reading files safely: atomic replacement, refused output paths, CSV formula
neutralising, text encodings and the CSV cell limit, URL helpers, yes/no words, one-line failure
messages, import reports."""
