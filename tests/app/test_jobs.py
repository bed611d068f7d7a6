"""Background jobs: a finished job keeps what its work returned; a failed one keeps one line."""

from __future__ import annotations

import time

from core.jobs import JobRunner


def wait(job, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while job.status == "running" and time.time() < deadline:
        time.sleep(0.01)


def test_a_job_keeps_its_result_or_its_first_error_line():
    runner = JobRunner()

    def work(job):
        job.progress(1, 2, "half")
        return {"answer": 42}

    done = runner.start("ok", work)
    failed = runner.start("bad", lambda job: (_ for _ in ()).throw(ValueError("first line\nsecond")))
    wait(done), wait(failed)
    assert (done.status, done.result, done.message, done.finished is not None) == ("done", {"answer": 42}, "half", True)
    assert (failed.status, failed.error, failed.result) == ("failed", "first line", None)


def test_starting_a_running_job_again_returns_the_running_one():
    import threading

    runner, release, runs = JobRunner(), threading.Event(), []

    def work(job):
        runs.append(job)
        release.wait(10)
        return len(runs)

    first = runner.start("embed x", work)
    again = runner.start("embed x", work)  # a second click while it runs
    assert again is first and runner.running() == [first]
    release.set()
    wait(first)
    assert first.result == 1 and len(runs) == 1  # the work ran once
    rerun = runner.start("embed x", work)  # once finished, the same name starts a new job
    wait(rerun)
    assert rerun is not first and rerun.result == 2


def test_a_job_acts_as_the_person_who_started_it():
    from core.team.access import acting, acting_as
    from core.team.roles import Person, Role

    runner = JobRunner()
    nina = Person("nina@shop.com", Role.ADMIN)
    with acting_as(nina):
        job = runner.start("who", lambda job: acting())
    wait(job)
    assert job.result == nina and acting() != nina  # the library's checks in the job see her, nobody else does
