"""Lookalike app, the one entry point: `streamlit run streamlit_app/Home.py`.

Page set-up and the catalog connection happen here, on every run, before the chosen page;
the pages in views/ hold layout only.
"""

import streamlit as st

import ui

PAGES = [  # (file, title, URL path)
    ("views/home.py", "Home", ""),
    ("views/catalog.py", "Catalog", "Catalog"),
    ("views/search.py", "Search", "Search"),
    ("views/label.py", "Label", "Label"),
    ("views/precision.py", "Precision", "Precision"),
    ("views/export.py", "Export", "Export"),
    ("views/methods.py", "Methods", "Methods"),
]

page = st.navigation([st.Page(file, title=title, url_path=url or None, default=not url) for file, title, url in PAGES])
st.set_page_config(page_title=f"Lookalike · {page.title}", page_icon="👗", layout="wide")
ui.db()  # this session's catalog, opened once; one clear line if it cannot be
page.run()
