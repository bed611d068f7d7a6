"""The JSON API for a shop's site and systems: look-alikes by item, photo or text over HTTP.

`app.py` builds the FastAPI application (routes, error replies), `keys.py` checks API keys,
`uploads.py` reads a photo upload within its size cap, `serve.py` runs it on uvicorn
(`python -m core serve`). It reads the catalog read-only and calls the library only; nothing
below it imports it. docs/api.md describes the endpoints.
"""
