"""The FastAPI application: look-alikes by item, photo or text, the methods, a health check.

Every request reads the catalog through its worker thread's own read-only connection, inside one
read transaction: all it reads (vectors, their change counter, labels) comes from one snapshot,
so an `embed`, `index` or `tune` running beside the server never mixes two states in one answer.
Errors are JSON `{"error": "one line"}` with a 4xx status for anything the caller can fix.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from core.api import uploads
from core.api.keys import key_matches, load_keys
from core.catalog.db import Catalog, CatalogError, files_dir, open_catalog
from core.catalog.filters import parse_filters
from core.catalog.items import catalog_id
from core.catalog.vectors import missing_vectors
from core.curation.curated import CuratedResult, curated_search
from core.curation.labels import Query as LabelQuery
from core.curation.labels import current_labels
from core.files.hidden_paths import without_paths
from core.files.urls import strip_credentials
from core.methods import UnknownMethod, WeightsMissing, get_spec
from core.methods.registry import method_states
from core.search.fusion import parse_methods
from core.search.index import IndexUnavailable
from core.search.queries import SearchError, Spaces
from core.search.space import ItemGone, MethodSpace
from core.settings import DEFAULT_METHOD, settings

log = logging.getLogger(__name__)

MAX_K = 1000
TEXT_METHOD = "minilm"
RETRY_S = 30  # what a 503 during a re-embed or rebuild asks the caller to wait


class ApiError(Exception):
    """A reply other than 200, with its one-line reason."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class Result(BaseModel):
    item_id: str
    score: float
    title: str | None
    image_url: str | None
    relevant: bool | None  # the team's latest label for this query and item; null when unlabelled
    reason: str  # why it is in the list: pinned, accepted, steered or model


class Results(BaseModel):
    method: str
    version: str  # a fusion's: "a=1,b=2", each method's vector version
    results: list[Result]
    note: str | None = None  # why there are fewer than k results (which filter removed them), stale vectors


class MethodRow(BaseModel):
    """A method as `methods --json` lists it, without the server's folders."""

    name: str
    kind: str
    available: bool
    reason: str | None  # why it cannot run here, with the remedy
    state: str  # ready, changed, not embedded, missing
    vectors: int
    todo: str | None  # the next step, when `reason` does not already say it
    device: str | None
    backend: str | None
    precision: str | None
    bases: list[str] | None = None
    training: dict | None = None


class Error(BaseModel):
    error: str


Count = Annotated[int, Query(ge=1, le=MAX_K, description="how many results")]
Method = Annotated[
    str, Query(description="a method, or several fused with weights: efficientnet_lite0=0.7,color_hist=0.3")
]
Filters = Annotated[
    list[str],
    Query(alias="filter", description="KEY=VALUE (category, gender, brand, colour, price_max, ...), repeatable"),
]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Error} for code in (401, 404, 413, 415, 422, 503)}


class Reader:
    """One read-only connection to the catalog per worker thread, opened on first use."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def catalog(self) -> Catalog:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_catalog(self.path, read_only=True)
        return db

    def server_paths(self) -> tuple[Path, ...]:
        """The server's folders that no answer names: the catalog, its files, its folder, the models folder."""
        path = self.path.resolve()
        return tuple(p for p in (path, files_dir(path), path.parent, settings().models) if p is not None)

    @contextmanager
    def snapshot(self) -> Iterator[Catalog]:
        """The catalog inside one read transaction: every read sees the same committed state."""
        db = self.catalog()
        db.conn.execute("BEGIN")
        try:
            yield db
        finally:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")


def _checked_method(db: Catalog, method: str) -> tuple[MethodSpace, str]:
    """The method's space and the version of its vectors that answers: 404 for an unknown method, 422
    when it has none. While a new version is embedded the complete old one answers (one version only)."""
    try:
        space = MethodSpace(db, get_spec(method, db))
    except UnknownMethod as exc:
        raise ApiError(404, f"{exc}; GET /methods lists them") from None
    if space.vector_count() == 0:
        raise ApiError(422, missing_vectors(method))
    return space, space.searched_version()


def _checked_spaces(db: Catalog, method: str) -> tuple[Spaces, str]:
    """`_checked_method` for a method as the CLI's --method reads it: one name, or several fused with
    weights ('a=0.7,b=0.3': each part checked, the version 'a=v1,b=v2'); 422 for unusable weights."""
    try:
        named = parse_methods(method)
    except ValueError as exc:
        raise ApiError(422, f"method: {exc}") from None
    if isinstance(named, str):
        return _checked_method(db, named)
    checked = {name: _checked_method(db, name) for name in named}
    spaces = {space: named[name] for name, (space, _) in checked.items()}
    return spaces, ",".join(f"{name}={version}" for name, (_, version) in checked.items())


def _filters(pairs: list[str]) -> dict:
    try:
        return parse_filters(pairs)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


def _results(method: str, version: str, hits, labels: dict[str, bool], notes: Sequence[str] = ()) -> Response:
    """The answer as JSON, serialised once here (FastAPI would validate the model again, then serialise it)."""
    results = Results(
        method=method,
        version=version,
        results=[
            Result(
                item_id=h.item_id,
                score=h.score,
                title=h.title,
                image_url=strip_credentials(h.image_url) if h.image_url else None,
                relevant=labels.get(h.item_id),
                reason=h.reason,
            )
            for h in hits
        ],
        note="; ".join(notes) or None,
    )
    return Response(results.model_dump_json(), media_type="application/json")


def _item_exists(db: Catalog, item_id: str) -> bool:
    return db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is not None


def _search(spaces: Spaces, **query) -> CuratedResult:
    """The curated list (`curated_search`; the model's with raw=True or for a fusion of methods), its
    one-line refusals as 422 (an unknown item as 404), an unusable index as 503."""
    try:
        return curated_search(spaces, **query)
    except SearchError as exc:
        db = next(iter(spaces)).catalog if isinstance(spaces, dict) else spaces.catalog
        item = query.get("item_id")
        missing = item is not None and not _item_exists(db, catalog_id(db, item))
        missing = missing or isinstance(exc, ItemGone)  # not in the shop any more
        raise ApiError(404 if missing else 422, str(exc)) from None
    except WeightsMissing as exc:
        raise ApiError(422, str(exc)) from None
    except IndexUnavailable as exc:
        raise ApiError(503, str(exc), RETRY_S) from None


def _routes(reader: Reader) -> APIRouter:
    """The endpoints that need a key (when keys are set), one group per concern."""
    router = APIRouter(responses=ERRORS)
    for add in (_item_routes, _search_routes, _method_routes):
        add(router, reader)
    return router


def _item_routes(router: APIRouter, reader: Reader) -> None:
    """Look-alikes of a catalog item: its curated list."""

    @router.get("/items/{item_id}/similar", response_model=Results)
    async def similar_items(
        item_id: str,
        k: Count = 10,
        method: Method = DEFAULT_METHOD,
        filters: Filters = [],  # noqa: B006 - FastAPI copies defaults
        only_relevant: bool = False,
        like: Annotated[list[str], Query(description="an item id to steer toward, repeatable")] = [],  # noqa: B006
        unlike: Annotated[list[str], Query(description="an item id to steer away from and leave out")] = [],  # noqa: B006
        raw: Annotated[
            bool, Query(description="the model's list untouched: no pins, verdicts, hides or rules")
        ] = False,
    ) -> Response:
        """The curated list of the k catalog items most like a catalog item (itself excluded), as
        `search --item` gives it: pins, the team's verdicts, steered refill, hides and rules; each
        result says why it is there (`reason`: pinned, accepted, steered or model). `raw=true`: the model's list.

        Runs on the event loop: about 2 ms of work that holds the GIL or one BLAS core, where a hop to a
        worker thread and back costs as much again under load (the load benchmark, docs/benchmarks.md)."""
        parsed = _filters(filters)
        with reader.snapshot() as db:
            item_id = catalog_id(db, item_id)  # as typed when an item has it, else as imports spell ids
            space, version = _checked_spaces(db, method)
            if len(like) + len(unlike) > MAX_K:
                raise ApiError(422, f"at most {MAX_K} like and unlike items")
            found = _search(space, item_id=item_id, k=k, filters=parsed, like=like, unlike=unlike, raw=raw)
            hits = found.results
            labels = current_labels(db, LabelQuery.item(item_id))
        if only_relevant:
            hits = [h for h in hits if labels.get(h.item_id)]
        return _results(method, version, hits, labels, found.notes)


def _search_routes(router: APIRouter, reader: Reader) -> None:
    """Catalog items found by words or by an uploaded photo."""

    @router.get("/search/text", response_model=Results)
    def search_text(
        q: Annotated[str, Query(min_length=1, max_length=1000, description="the words to search for")],
        k: Count = 10,
        method: Method = TEXT_METHOD,
    ) -> Response:
        """Catalog items whose titles and descriptions (minilm) or photos (clip, fashion_clip) match the words."""
        with reader.snapshot() as db:
            space, version = _checked_spaces(db, method)
            found = _search(space, text=q, k=k)
            return _results(method, version, found.results, {}, found.notes)

    @router.post(
        "/search/image",
        response_model=Results,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def search_image(request: Request, k: Count = 10, method: Method = DEFAULT_METHOD) -> Response:
        """Catalog items most like an uploaded photo (JPEG, PNG, WebP or AVIF, at most 20 MB, field `file`)."""
        data = await uploads.read_photo(request)

        def run() -> Response:
            photo = uploads.check_photo(data)  # decoded once, here, off the event loop
            with reader.snapshot() as db:
                space, version = _checked_spaces(db, method)
                found = _search(space, image=photo, k=k)
                labels = current_labels(db, LabelQuery.upload(photo.sha256))
                return _results(method, version, found.results, labels, found.notes)

        async with request.app.state.photo_slots:  # at most LOOKALIKE_API_PHOTOS photos decoded at once
            return await run_in_threadpool(run)


def _method_routes(router: APIRouter, reader: Reader) -> None:
    """The methods and their state."""

    @router.get("/methods")
    def methods() -> list[MethodRow]:
        """Every method, whether it can run here (and if not, why), as `python -m core methods --json`
        says it, the server's folders named by their last part only."""
        with reader.snapshot() as db:
            rows = method_states(db)
        hidden = reader.server_paths()
        return [
            MethodRow.model_validate(row, from_attributes=True).model_copy(
                update={
                    "reason": row.reason and without_paths(row.reason, *hidden),
                    "todo": row.todo and without_paths(row.todo, *hidden),
                }
            )
            for row in rows
        ]


_BEARER = HTTPBearer(auto_error=False, description="an API key (LOOKALIKE_API_KEY or the keys file)")


async def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> None:
    """`Authorization: Bearer KEY` with one of the app's keys, when it has any; 401 otherwise."""
    keys = request.app.state.keys
    if keys and not (credentials and key_matches(credentials.credentials, keys)):
        raise ApiError(401, "a valid API key is needed: send Authorization: Bearer KEY")


def _error(status: int, message: str, retry_after: int | None = None, hidden: tuple[Path, ...] = ()) -> JSONResponse:
    message = without_paths(message, *hidden)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _one_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body"))
    return f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")


def _install_errors(app: FastAPI, hidden: tuple[Path, ...]) -> None:
    """Every error as JSON with one line (the server's folders, `hidden`, cut out); the unexpected ones
    logged with their traceback."""
    statuses = {
        uploads.UploadTooLarge: 413,
        uploads.NotAPhoto: 415,
        uploads.NoPhoto: 422,
        CatalogError: 503,
        sqlite3.DatabaseError: 503,  # locked past the busy timeout, or damaged
    }
    app.add_exception_handler(ApiError, lambda _, exc: _error(exc.status, exc.message, exc.retry_after, hidden))
    app.add_exception_handler(RequestValidationError, lambda _, exc: _error(422, _one_line(exc), hidden=hidden))
    app.add_exception_handler(HTTPException, lambda _, exc: _error(exc.status_code, str(exc.detail), hidden=hidden))
    for kind, status in statuses.items():
        app.add_exception_handler(kind, lambda _, exc, status=status: _logged(status, exc, hidden))

    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error; the server log has the details")

    app.add_exception_handler(Exception, unexpected)


def _logged(status: int, exc: Exception, hidden: tuple[Path, ...]) -> JSONResponse:
    if status >= 500:
        log.warning("answered %d: %s", status, exc)
    return _error(
        status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, RETRY_S if status == 503 else None, hidden
    )


def create_app(db: str | Path | None = None, keys: tuple[str, ...] | None = None) -> FastAPI:
    """The API over the catalog at `db` (default: the settings'), asking for one of `keys`
    (default: the settings' keys; none: no key asked)."""
    reader = Reader(Path(db or settings().db))
    keys = load_keys() if keys is None else keys
    app = FastAPIOffline(  # /docs and /redoc from files in the package: they work offline and behind a proxy
        title="Lookalike API",
        summary="Look-alike products from the curated catalog: by item, photo or text.",
        version="1",
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would ask validator.swagger.io otherwise
    )
    _install_errors(app, reader.server_paths())

    @app.get("/healthz", responses={503: {"model": Error}})
    def healthz() -> dict:
        """200 when the catalog opens (no key needed)."""
        with reader.snapshot() as db:
            items = db.execute("SELECT count(*) FROM items").fetchone()[0]
        return {"status": "ok", "items": items}

    app.state.keys = keys
    app.state.photo_slots = asyncio.Semaphore(settings().api_photos)
    app.include_router(_routes(reader), dependencies=[Depends(require_key)])
    return app
