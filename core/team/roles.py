"""Roles and the roles file (`LOOKALIKE_ROLES_FILE`): one `pattern,role` a line, a pattern being an
email (`ana@shop.com`) or every address of a domain (`*@shop.com`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class Role(IntEnum):
    """What a person may do; each role may do all that the ones below it may."""

    VIEWER = 1  # browse, search, precision
    LABELLER = 2  # + label
    CURATOR = 3  # + pins, hides, rules, export
    ADMIN = 4  # + import, embed, index, tune, train, device

    @property
    def word(self) -> str:
        return self.name.lower()

    @property
    def a(self) -> str:
        """'a viewer', 'an admin'."""
        return f"{'an' if self.word[0] in 'aeiou' else 'a'} {self.word}"


class RolesError(ValueError):
    """A roles file that cannot be used, in one line (naming the file and line)."""


@dataclass(frozen=True)
class Person:
    """Someone acting on a catalog: a signed-in email (or proxy user name), or `LOCAL`, the one user of
    an app or command line without sign-in (who types a name where a name is recorded)."""

    email: str  # "" for the local user
    role: Role

    @property
    def signed_in(self) -> bool:
        return bool(self.email)

    def named(self, typed: str | None) -> str:
        """The name to record for what this person does: the signed-in email, never a typed name;
        without sign-in, the typed name."""
        return self.email if self.signed_in else (typed or "").strip()


LOCAL = Person("", Role.ADMIN)


@dataclass(frozen=True)
class Rule:
    """One line of the roles file."""

    pattern: str  # lower case: an email, or `*@domain`
    role: Role

    def matches(self, email: str) -> bool:
        email = email.strip().lower()
        if self.pattern.startswith("*@"):
            local, _, domain = email.rpartition("@")
            return bool(local) and "@" not in local and f"*@{domain}" == self.pattern
        return email == self.pattern


def parse_roles(text: str, source: str = "roles file") -> list[Rule]:
    """The rules of a roles file's text (blank lines and `#` comments skipped); RolesError naming the
    line for a line that is not `pattern,role`, an unknown role, a bad pattern or a pattern given twice."""
    rules: dict[str, Rule] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pattern, _, role = (part.strip() for part in line.partition(","))
        pattern = pattern.lower()
        where = f"{source} line {number}"
        if not role:
            raise RolesError(f"{where}: write `email,role` or `*@domain,role`, not {line[:60]!r}")
        try:
            chosen = Role[role.upper()]
        except KeyError:
            raise RolesError(f"{where}: unknown role {role[:30]!r} (viewer, labeller, curator or admin)") from None
        local, at, domain = pattern.partition("@")
        if not at or not domain or "@" in domain or "*" in domain or (("*" in local) and local != "*"):
            raise RolesError(f"{where}: {pattern[:60]!r} is neither an email nor *@domain")
        if pattern in rules:
            raise RolesError(f"{where}: {pattern} is given a role twice")
        rules[pattern] = Rule(pattern, chosen)
    return list(rules.values())


def read_roles(path: Path) -> list[Rule]:
    """The rules of the roles file at `path` (RolesError when it cannot be read or used)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RolesError(
            f"cannot read the roles file {Path(path).name}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return parse_roles(text, Path(path).name)


def role_of(email: str, rules: list[Rule]) -> Role | None:
    """The role of `email`: its own line's, else its domain's; None (no access) when neither is given."""
    exact = [r.role for r in rules if not r.pattern.startswith("*@") and r.matches(email)]
    domain = [r.role for r in rules if r.pattern.startswith("*@") and r.matches(email)]
    found = exact or domain
    return found[0] if found else None


def admins(rules: list[Rule]) -> list[str]:
    """The admins the roles file names by email (whom a person without access should ask)."""
    return [r.pattern for r in rules if r.role is Role.ADMIN and not r.pattern.startswith("*@")]
