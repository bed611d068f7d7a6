"""Lookalike app, the one entry point: `streamlit run streamlit_app/Home.py`.

Sign-in (signin.py), page set-up and the catalog connection happen here, on every run, before the
chosen page; a person sees only the pages their role may use, and the page runs as them (the library
refuses what their role may not do, core/team/access.py). The pages in views/ hold layout only.
"""

import signin
import streamlit as st

from core.team.access import acting_as
from core.team.roles import Role

import ui

PAGES = [  # (file, title, URL path, the least role that sees it)
    ("views/home.py", "Home", "", Role.VIEWER),
    ("views/catalog.py", "Catalog", "Catalog", Role.VIEWER),
    ("views/search.py", "Search", "Search", Role.VIEWER),
    ("views/label.py", "Label", "Label", Role.LABELLER),
    ("views/precision.py", "Precision", "Precision", Role.VIEWER),
    ("views/export.py", "Export", "Export", Role.CURATOR),
    ("views/methods.py", "Methods", "Methods", Role.ADMIN),
    ("views/activity.py", "Activity", "Activity", Role.ADMIN),
]

person = st.session_state[ui.Keys.PERSON] = signin.person()  # the sign-in or no-access page stops here
shown = [
    st.Page(file, title=title, url_path=url or None, default=not url)
    for file, title, url, role in PAGES
    if person.role >= role
]
page = st.navigation(shown)
st.set_page_config(page_title=f"Lookalike · {page.title}", page_icon="👗", layout="wide")
if person.signed_in:
    st.sidebar.caption(f"Signed in as {ui.plain(person.email)} ({person.role.word})")
ui.db()  # this session's catalog, opened once; one clear line if it cannot be
with acting_as(person):
    page.run()
