"""Long jobs (embedding, indexing, training) in background threads, with progress anyone can read.

A job outlives the page that started it: the app polls its progress, and a failure is kept
as one line (details in the log). Starting a job that is already running returns the running one.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    status: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    message: str = ""
    error: str | None = None
    history: list[float] = field(default_factory=list)  # e.g. training loss per epoch
    result: object = None  # what the work returned, once done
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = done, total
        if message:
            self.message = message

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else (1.0 if self.status == "done" else 0.0)


class JobRunner:
    """The jobs of one process, by name."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, name: str, work: Callable[[Job], object]) -> Job:
        with self._lock:
            current = self._jobs.get(name)
            if current and current.status == "running":
                return current
            job = self._jobs[name] = Job(name)
        context = contextvars.copy_context()  # the job acts as the person who started it (core.team.access)
        threading.Thread(target=context.run, args=(self._run, job, work), name=f"job-{name}", daemon=True).start()
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], object]) -> None:
        try:
            job.result = work(job)
            job.status = "done"
        except Exception as exc:  # one line for the user, the traceback for the log
            log.exception("job %s failed", job.name)
            job.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            job.status = "failed"
        finally:
            job.finished = time.time()

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.status == "running"]
