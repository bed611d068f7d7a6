"""Shared UI pieces: the catalog connection, cached resources, state keys, the thumbnail grid."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import signin
import streamlit as st
from PIL import Image

from core.catalog.db import CatalogError, open_catalog
from core.catalog.images import ImageError, load_upload
from core.catalog.thumbnails import catalog_thumbnail
from core.curation.preferences import load_preferences, remember
from core.files import hidden_paths
from core.files.markdown import plain
from core.jobs import JobRunner
from core.search.space import MethodSpace, open_space
from core.settings import DEFAULT_METHOD, settings
from core.team.access import Action, acting, acting_as
from core.team.access import may as access_may
from core.team.roles import Person

if TYPE_CHECKING:
    from core.methods.registry import MethodInfo
    from core.search.queries import Hit

log = logging.getLogger(__name__)
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "avif"]
PRECISION_FORMAT = "%.3f"  # every precision figure the pages show, with the same decimals


class Keys:
    """Session-state keys, named in one place."""

    LABELER = "labeler"
    LABEL_QUERY = "label_query"
    LABEL_METHOD = "label_method"
    LABEL_ORDER = "label_order"
    LABEL_CATEGORY = "label_category"
    LABEL_MODE = "label_mode"
    LABEL_UPLOAD = "label_upload"
    LABEL_QUEUE = "label_queue"
    UPLOAD_TIMES = "upload_times"  # photo sha256 -> when this session first saw it uploaded
    SEARCH_RESULTS = "search_results"
    SEARCH_CURATED = "search_curated"  # the curated list (True) or the model's
    SEARCH_STEERS = "search_steers"  # the query it is for, and the items to show more / less like
    BROWSE_PAGE = "browse_page"
    EXPORT_FILE = "export_file"
    LABELS_FILE = "labels_file"  # the labels CSV this session exported: (rows, bytes)
    DEVICE = "device"
    PERSON = "person"  # who uses this session (Home.py sets it on every run, from the sign-in)


@dataclass
class Steers:
    """The Search page's "more / less like this" clicks for one query (item id, text, photo sha256)."""

    query: tuple
    like: list[str] = field(default_factory=list)
    unlike: list[str] = field(default_factory=list)


def remembered(key: str, options: list | None = None, persist: bool = False) -> dict:
    """Widget arguments that keep a widget's value for the whole session, across page switches.

    Streamlit forgets a widget's state on a page that does not show it; a plain copy survives.
    With `persist` (text values), the value is also kept on this computer beside the catalog
    (core.curation.preferences) and starts every new session. Use as `st.text_input(..., **remembered(Keys.LABELER))`.
    """
    saved = f"saved::{key}"
    if persist and key not in st.session_state and saved not in st.session_state:
        stored = load_preferences(db().data_dir).get(key)
        if stored is not None:
            st.session_state[saved] = stored
    if key not in st.session_state and saved in st.session_state:
        if options is None or st.session_state[saved] in options:
            st.session_state[key] = st.session_state[saved]

    def save() -> None:
        st.session_state[saved] = st.session_state[key]
        if persist:
            try:
                remember(db().data_dir, key, str(st.session_state[key] or ""))
            except OSError as exc:
                log.warning("cannot remember %s: %s", key, exc)
                st.toast(f"Kept for this session only: cannot write beside the catalog ({exc.strerror or exc}).")

    return {"key": key, "on_change": save}


def choose(key: str, value) -> None:
    """Set a `remembered` widget's value before its page shows it (another page's button: "judge the gap")."""
    st.session_state[f"saved::{key}"] = value
    st.session_state.pop(key, None)


def person() -> Person | None:
    """Who uses this session: the signed-in person (the local user without sign-in); None: nobody."""
    return st.session_state.get(Keys.PERSON) or acting()


def may(action: Action) -> bool:
    """Whether this session's person may take `action` (a page shows only the buttons they may use)."""
    return access_may(person(), action)


def acting_here():
    """Act as this session's person, worked out again from the sign-in and the roles file: for widget
    callbacks, which Streamlit runs before Home.py does."""
    return acting_as(signin.identify())


def db_path() -> Path:
    return settings().db


def db():
    """This session's catalog connection (one per session: SQLite connections are not shared)."""
    key = f"db::{db_path()}"
    if key not in st.session_state:
        try:
            st.session_state[key] = open_catalog(db_path())
        except CatalogError as exc:
            st.error(str(exc))
            st.stop()
    return st.session_state[key]


def space(method: str) -> MethodSpace:
    """A method's space in this session's catalog (SearchError for an unknown method)."""
    return open_space(db(), method)


@st.cache_resource
def jobs() -> JobRunner:
    """Background jobs of this app process, shared by every session."""
    return JobRunner()


def methods() -> list[MethodInfo]:
    """Every method and whether it can run here; looked up again when a job of this app ends."""
    last_job_end = max((job.finished or 0.0 for job in jobs().all()), default=0.0)
    return _methods(db(), str(db_path()), last_job_end)


@st.cache_data(ttl=30, show_spinner=False)
def _methods(_catalog, path: str, last_job_end: float) -> list[MethodInfo]:
    from core.methods import list_methods

    return list_methods(_catalog)


def default_first(names: list[str]) -> list[str]:
    """Method names with the embedded default first, the rest alphabetical."""
    return sorted(names, key=lambda n: (n != DEFAULT_METHOD, n))


def thumb(path: str | None) -> str | None:
    """The thumbnail of a photo the catalog records; None for any other path, or a photo gone or unreadable."""
    found = catalog_thumbnail(db(), path)
    return str(found) if found else None


def photo(path: str | None, caption: str | None = None, width: int | str = "content", where=st) -> None:
    """Show a catalog photo (pages show catalog photos through this only), or a line saying why none shows."""
    image = thumb(path)
    if image:
        where.image(image, caption=plain(caption) if caption else None, width=width)
    else:
        where.caption(
            " · ".join(filter(None, [plain(caption) if caption else None, "photo missing" if path else "no photo"]))
        )


def upload_photo(upload) -> Image.Image | None:
    """The uploaded photo, checked and decoded, or None after one error line; its bytes only, never its name."""
    try:
        return load_upload(upload.getvalue())
    except ImageError as exc:
        st.error(f"That photo cannot be used: {plain(exc)}.")
        return None


def uploaded_photo(label: str = "A photo (JPEG, PNG, WebP or AVIF)", key: str | None = None):
    """A photo uploader: (the photo checked and decoded, its bytes), or None (after one error line if unusable)."""
    upload = st.file_uploader(label, type=PHOTO_TYPES, key=key)
    shown = upload_photo(upload) if upload is not None else None
    return None if shown is None else (shown, upload.getvalue())


class Thumbnail(Protocol):
    """What the grid shows of an item: a search `Hit`, an `ItemCard` or a `browse` row."""

    @property
    def item_id(self) -> str: ...

    @property
    def title(self) -> str | None: ...

    @property
    def image_path(self) -> str | None: ...


ThumbnailT = TypeVar("ThumbnailT", bound=Thumbnail)


def grid(
    items: Sequence[ThumbnailT],
    columns: int = 5,
    caption: Callable[[ThumbnailT], str] | None = None,
    key_prefix: str = "",
    actions: Callable[[ThumbnailT, str], None] | None = None,
) -> None:
    """Thumbnails in rows; `caption(item)` gives the Markdown under each (catalog text through `plain`); `actions(item, key)` adds widgets,
    in a row of their own so that they line up whatever the captions' lengths."""
    for start in range(0, len(items), columns):
        row = items[start : start + columns]
        for col, item in zip(st.columns(columns), row):
            with col:
                photo(item.image_path, width="stretch")
                st.caption(caption(item) if caption else plain(item.title or item.item_id))
        if actions:
            for col, item in zip(st.columns(columns), row):
                with col:
                    actions(item, f"{key_prefix}{item.item_id}")


def job_progress(name: str) -> None:
    """Show a background job's progress; refreshes itself while the job runs."""
    job = jobs().get(name)
    if job is None:
        return
    if job.status == "running":
        st.progress(job.fraction, text=f"{plain(job.name)}: {job.done}/{job.total} {plain(job.message)}")
    elif job.status == "done":
        st.success(f"{plain(job.name)}: done. {plain(job.message)}")
    else:
        st.error(f"{plain(job.name)} stopped: {plain(job.error)}")


def live_jobs(prefix: str, extra=None) -> None:
    """Progress of this process's jobs named `prefix...`, shown where this is called (under the
    button that starts them), with `extra(job)` after each; polls once a second while one runs and
    reruns the page when it ends (so tables above show what it made)."""

    def mine() -> bool:
        return any(job.name.startswith(prefix) for job in jobs().running())

    polling = mine()

    @st.fragment(run_every=1.0 if polling else None)
    def live() -> None:
        for job in jobs().all():
            if job.name.startswith(prefix):
                job_progress(job.name)
                if extra:
                    extra(job)
        if polling and not mine():
            st.rerun()

    live()


def filter_widgets(database, key: str) -> dict:
    """Category / brand / gender / colour pickers and a price range; returns core filters."""
    from core.catalog.filters import distinct_values
    from core.catalog.items import price_range

    filters: dict = {}
    offered = {c: values for c in ("category", "brand", "gender", "colour") if (values := distinct_values(database, c))}
    prices = price_range(database)
    priced = bool(prices and prices[1] > prices[0])
    if not offered and not priced:
        return filters
    cols = iter(st.columns(len(offered) + priced))  # one slot per filter the catalog has values for
    for column, values in offered.items():
        chosen = next(cols).multiselect(column.capitalize(), values, key=f"{key}_{column}")
        if chosen:
            filters[column] = chosen
    if priced:
        low, high = next(cols).slider("Price", prices[0], prices[1], prices, key=f"{key}_price")
        if (low, high) != prices:
            filters["price_min"], filters["price_max"] = low, high
    return filters


def caption_with_score(hit: Hit) -> str:
    """'3. Puma Men Black Shoes · 10129 · score 0.812': the id tells apart items with the same title."""
    return f"{hit.rank}. {plain(hit.title or '')} · {plain(hit.item_id)} · score {hit.score:.3f}"


def without_paths(text: str, *paths: Path) -> str:
    """A message fit for the browser: the server's folders cut from `paths` and from the catalog's
    own path (each file named by its name only)."""
    return hidden_paths.without_paths(text, *paths, db_path())


def plural(count: int, word: str) -> str:
    """'1 label', '2 labels', '1,204 labels'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
