"""Who is using the app (docs/team.md): the local user without sign-in; with `LOOKALIKE_AUTH`, the person
Streamlit's OpenID Connect sign-in (`oidc`) or a trusted proxy's header (`proxy`) names, with the role the
roles file gives them. Nobody, or somebody without a role, gets a page saying whom to ask, and no other."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.files.markdown import plain
from core.settings import SettingError, settings
from core.team import proxy
from core.team.roles import LOCAL, Person, RolesError, Rule, admins, read_roles, role_of

NOBODY_ASKS = "whoever runs this server"


def person() -> Person:
    """This session's person; the sign-in or no-access page, and a stop, when there is none."""
    try:
        mode = settings().auth
        if mode is None:
            return LOCAL
        rules = _roles(settings().roles_file)
    except (SettingError, RolesError) as exc:
        st.error(f"Sign-in is not set up right: {exc}")
        st.stop()
    if mode == "oidc" and not st.user.is_logged_in:
        _sign_in_page()
    if mode == "oidc":
        st.sidebar.button("Sign out", on_click=st.logout)
    name = _name(mode)
    role = role_of(name, rules) if name else None
    if role is None:
        _no_access(name, rules)
    return Person(name, role)


def identify() -> Person | None:
    """This session's person, worked out again without showing anything (for widget callbacks, which
    run before Home.py: a role taken away counts at once); None for nobody or sign-in set up wrong."""
    try:
        mode = settings().auth
        if mode is None:
            return LOCAL
        name = _name(mode)
        role = role_of(name, _roles(settings().roles_file)) if name else None
    except (SettingError, RolesError):
        return None
    return Person(name, role) if role else None


def _name(mode: str) -> str | None:
    """Whom the sign-in names: OIDC's verified email, or a trusted proxy's header; None for nobody."""
    if mode == "oidc":
        if not st.user.is_logged_in or st.user.get("email_verified") is False:
            return None
        return str(st.user.get("email") or "").strip().lower() or None
    listening = st.get_option("server.address")
    peer = st.context.ip_address or "127.0.0.1"  # Streamlit gives None for a loopback peer
    if not proxy.trusted(peer, listening, proxy.trusted_proxies(settings().trusted_proxies_text)):
        return None
    return proxy.named_person(st.context.headers)


def _roles(path: Path | None) -> list[Rule]:
    """The roles file's rules, read again when it changes."""
    if path is None:
        raise RolesError("LOOKALIKE_ROLES_FILE names no roles file, so nobody has a role")
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise RolesError(f"cannot read the roles file {path.name}: {exc.strerror}") from None
    return _read(str(path), stamp)


@st.cache_data(show_spinner=False, max_entries=4)
def _read(path: str, stamp: int) -> list[Rule]:
    return read_roles(Path(path))


def _sign_in_page() -> None:
    """Before OIDC sign-in: a Sign in button (to the provider), and nothing else."""
    st.set_page_config(page_title="Lookalike · sign in", page_icon="👗")
    st.title("Lookalike")
    st.write("Sign in to work on this catalog.")
    st.button("Sign in", type="primary", on_click=st.login)
    st.stop()


def _no_access(name: str | None, rules: list[Rule]) -> None:
    """The page for somebody without a role, or nobody: whom to ask; then stop."""
    st.set_page_config(page_title="Lookalike · no access", page_icon="👗")
    st.title("No access")
    contact = settings().admin_contact or ", ".join(admins(rules)) or NOBODY_ASKS
    if name:
        st.write(f"You are signed in as **{plain(name)}**, but have no role in this catalog.")
    else:
        st.write("Nobody is signed in: open the app through your team's sign-in address.")
    st.write(f"To get access, ask {plain(contact)}.")
    st.stop()
