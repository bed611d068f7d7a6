"""Make a method ready to search: embed what it still lacks, then build its index."""

from __future__ import annotations

from collections.abc import Callable

from core.engines.embed import EmbedReport, embed_space
from core.search.index import problem
from core.search.space import MethodSpace


def prepare_method(
    space: MethodSpace, on_progress: Callable[[int, int], None] | None = None, progress: bool = False
) -> EmbedReport:
    """Embed every missing or outdated vector of the space's method (resumable), then build its Annoy
    index unless the one on disk is current (so a re-run with nothing to do does nothing).

    What the Methods page's *Embed + index* and the demo set-up run.
    """
    report = embed_space(space, progress=progress, on_progress=on_progress)
    if problem(space.catalog, space.name, space.searched_version()):
        space.build_index(progress=progress)
    return report
