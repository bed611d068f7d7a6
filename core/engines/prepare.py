"""Make a method ready to search: embed what it still lacks, then build its index."""

from __future__ import annotations

from collections.abc import Callable

from core.catalog.db import Catalog
from core.engines.embed import EmbedReport, embed_catalog
from core.search.space import open_space


def prepare_method(
    catalog: Catalog, method: str, on_progress: Callable[[int, int], None] | None = None, progress: bool = False
) -> EmbedReport:
    """Embed every missing or outdated vector of `method` (resumable), then (re)build its Annoy index.

    What the Methods page's *Embed + index* and the demo set-up run.
    """
    report = embed_catalog(catalog, method, progress=progress, on_progress=on_progress)
    open_space(catalog, method).build_index(progress=progress)
    return report
