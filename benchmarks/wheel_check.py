"""The whole install check, as a user would meet it: build the wheel, install it in a fresh environment
outside the checkout, then from an empty folder `lookalike demo` (the four demo methods, models
included), a search by item and by photo, and the first answers of `serve` and `app`; prints how long
each step took. tests/test_packaging.py runs the same steps with one light method inside the suite.

    .venv/bin/python benchmarks/wheel_check.py

No network: the environment borrows this one's dependencies (see tests/test_packaging.py).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_packaging import build_wheel, first_answer, free_port, fresh_venv, run  # noqa: E402

from common import machine  # noqa: E402


def main() -> int:
    timings: list[tuple[str, float]] = []

    def step(name: str, work):
        start = time.perf_counter()
        value = work()
        timings.append((name, time.perf_counter() - start))
        return value

    with tempfile.TemporaryDirectory(prefix="lookalike-wheel-") as tmp:
        out = Path(tmp)
        wheel = step("build the wheel", lambda: build_wheel(out))
        bin_dir = step("install it in a fresh environment", lambda: fresh_venv(wheel, out / "venv"))
        here = out / "empty"
        here.mkdir()
        demo = step("lookalike demo", lambda: run(bin_dir, here, "demo", timeout=1800))
        if demo.returncode != 0:
            raise SystemExit(f"lookalike demo failed: {demo.stderr.strip().splitlines()[-1]}")
        found = step("lookalike search --item", lambda: run(bin_dir, here, "search", "--item", "10129", "--json"))
        photo = here / "photo.jpg"
        photo.write_bytes((Path(__file__).resolve().parent.parent / "demo" / "images" / "10129.jpg").read_bytes())
        by_photo = step(
            "lookalike search --image", lambda: run(bin_dir, here, "search", "--image", str(photo), "--json")
        )
        for answer in (found, by_photo):
            if answer.returncode != 0 or not json.loads(answer.stdout)["results"]:
                raise SystemExit(f"search failed: {answer.stderr.strip()}")
        port = free_port()
        serve = [str(bin_dir / "lookalike"), "serve", "--port", str(port)]
        status, _ = step(
            "lookalike serve: first answer",
            lambda: first_answer(serve, here, f"http://127.0.0.1:{port}/items/10129/similar"),
        )
        port = free_port()
        app = [str(bin_dir / "lookalike"), "app", "--port", str(port)]
        app_status, _ = step(
            "lookalike app: first answer", lambda: first_answer(app, here, f"http://127.0.0.1:{port}/_stcore/health")
        )
        if (status, app_status) != (200, 200):
            raise SystemExit(f"serve answered {status}, app {app_status}")
    print(f"machine: {machine()}\n\n| step | seconds |\n|---|---|")
    for name, seconds in timings:
        print(f"| {name} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
