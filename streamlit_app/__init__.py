"""The Streamlit app, installed with `core`: `lookalike app` (core/cli/app.py) runs its Home.py.

Streamlit runs Home.py with this folder first on the import path, so the app imports its own modules
as `ui`, `panels` and `views/…` (and pytest.ini's `pythonpath = streamlit_app` does the same for tests).
"""
