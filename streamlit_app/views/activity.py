"""Activity (admins): who did what, when, newest first, by anyone or by one person."""

import streamlit as st

from core.catalog.activity import people, read_activity

import ui

SHOWN = 500  # the newest rows the page shows

database = ui.db()
st.title("Activity")
everyone = "everyone"
chosen = st.selectbox("Person", [everyone, *people(database)], key="activity_person")
rows = read_activity(database, None if chosen == everyone else chosen, limit=SHOWN)
if not rows:
    st.info("Nothing done yet.")
    st.stop()
st.caption(f"The newest {ui.plural(len(rows), 'change')}, newest first (times in UTC).")
st.dataframe(
    [
        {"when": r.at.replace("T", " ").removesuffix("Z"), "who": r.person, "did": r.action, "what": r.detail}
        for r in rows
    ],
    hide_index=True,
    width="stretch",
)
