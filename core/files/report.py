"""The outcome of a batch job: counts plus every problem with where it happened and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Problem:
    where: str  # "row 12", "images/123.jpg"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did. `ok` is false only when nothing at all could be imported."""

    rows: int = 0
    items: int = 0  # good rows written or found unchanged: new + updated + unchanged
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    images_ok: int = 0
    images_bad: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.items > 0

    def problem(self, where: str, reason: str) -> None:
        self.problems.append(Problem(where, reason))

    def as_dict(self) -> dict:
        data = asdict(self)
        data["problems"] = [str(p) for p in self.problems]
        return data

    def summary(self) -> str:
        """One line for people: what came in, what was already there, the photos and the problems."""
        return (
            f"{self.items} items imported from {self.rows} rows: {self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged; photos ok {self.images_ok}, not usable {self.images_bad}; "
            f"{len(self.problems)} problem(s) reported"
        )
