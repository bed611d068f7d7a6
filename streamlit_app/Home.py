"""Lookalike app, the one entry point: `streamlit run streamlit_app/Home.py`.

Page set-up and the catalog connection happen here, on every run, before the chosen page;
the pages in views/ hold layout only.
"""
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # `core` importable until the project is pip-installed
    sys.path.insert(0, str(ROOT))

import ui  # noqa: E402

PAGES = [  # (file, title, URL path)
    ("views/home.py", "Home", ""),
    ("views/catalog.py", "Catalog", "Catalog"),
    ("views/search.py", "Search", "Search"),
    ("views/label.py", "Label", "Label"),
    ("views/precision.py", "Precision", "Precision"),
    ("views/export.py", "Export", "Export"),
    ("views/methods.py", "Methods", "Methods"),
]

page = st.navigation([st.Page(file, title=title, url_path=url or None, default=not url)
                      for file, title, url in PAGES])
st.set_page_config(page_title=f"Lookalike · {page.title}", page_icon="👗", layout="wide")
ui.db()                                # this session's catalog, opened once; one clear line if it cannot be
page.run()
