"""Work that gives way: index builds run at a lower CPU priority, so searches go first.

On a machine that serves the API, a full Annoy build (a compaction, `index`, a sync's rebuild) would
otherwise take every core for tens of seconds while shoppers' requests queue behind it
(docs/benchmarks.md, the live catalog). Linux keeps a nice value per thread, and the threads a
thread starts (Annoy's build threads) inherit it. The build therefore runs in a thread of its own at
nice LOOKALIKE_BUILD_NICE (10): it gets every core the moment nothing else wants them, as on an idle
machine, and about a tenth of what a request's process gets while requests want them. 19 gives way
further, but a machine that is never idle would then hardly build at all. On other systems the
work runs at the usual priority.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from core.settings import settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _lower_this_thread() -> None:
    """Give the calling thread, and the threads it starts from now on, an index build's priority
    (LOOKALIKE_BUILD_NICE), where a thread can have one of its own (Linux) and the system allows it."""
    nice = settings().build_nice  # a bad value: SettingError, on every system
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()  # Linux: this thread alone; never raised above where it is
    try:
        os.setpriority(os.PRIO_PROCESS, thread, max(nice, os.getpriority(os.PRIO_PROCESS, thread)))
    except OSError:
        log.info("could not lower this thread's priority", exc_info=True)


def giving_way(work: Callable[[], T]) -> T:
    """`work()` done in a thread of its own at an index build's priority (with this thread's context:
    the person acting, core/team/access.py); its result, or its exception, raised here."""
    done: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            _lower_this_thread()
            done.set_result(context.run(work))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            done.set_exception(exc)

    threading.Thread(target=run, name="giving-way", daemon=True).start()  # Ctrl+C while waiting: no wait for it
    return done.result()
