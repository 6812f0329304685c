"""The git side of bisect: revisions, the commits between two of them, a worktree per revision, and
what changed in the dependency files.

The range is the first-parent history from the good revision (exclusive) to the bad one
(inclusive), as `git rev-list --first-parent good..bad` lists it: one commit per merged change.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import BisectError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (requires-python): the same parser, from PyPI (the bisect extra installs it)
    import tomli as tomllib

DEPENDENCY_FILES = ("pyproject.toml", "constraints.txt")  # what a revision's environment is built from
GIT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Commit:
    """One revision: full hash, subject line, committer date (ISO 8601), files changed against its first parent."""

    sha: str
    subject: str
    date: str
    files: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:10]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "files": list(self.files)}


def git(repo: Path, *args: str) -> str:
    """`git -C repo args...`'s output; a BisectError with git's own first line when it fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BisectError(f"git {' '.join(args[:2])} in {repo} failed: {error}") from None
    if done.returncode:
        why = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[0]
        raise BisectError(f"git {' '.join(args[:2])} in {repo} failed: {why}")
    return done.stdout


def resolve(repo: Path, revision: str, option: str) -> str:
    """The full hash of `revision` (a hash, tag, branch or HEAD~3) in `repo`."""
    if not (Path(repo) / ".git").exists():
        raise BisectError(
            f"--repo {repo} is not a git checkout (no .git); give the checkout that holds the harness and its recipes"
        )
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
    except BisectError:
        raise BisectError(
            f"{option} {revision!r} is not a commit of {repo}; give a hash, tag or branch (`git log --oneline` lists"
            " them)"
        ) from None


def commit(repo: Path, sha: str) -> Commit:
    sha, subject, date = git(repo, "show", "-s", "--format=%H%x00%s%x00%cI", sha).rstrip("\n").split("\x00")
    files = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "-m", "--first-parent", "--root", sha).split()
    return Commit(sha, subject, date, tuple(dict.fromkeys(files)))


def between(repo: Path, good: str, bad: str) -> list[Commit]:
    """The commits after `good` up to and including `bad`, oldest first; a BisectError when `good`
    is not an older revision on `bad`'s first-parent line."""
    if good == bad:
        raise BisectError(
            f"--good and --bad are the same commit ({good[:10]}); give the last revision known good and the first"
            " known bad"
        )
    try:
        git(repo, "merge-base", "--is-ancestor", good, bad)
    except BisectError:
        raise BisectError(
            f"--good {good[:10]} is not an ancestor of --bad {bad[:10]}; give the older, good revision as --good"
        ) from None
    shas = git(repo, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}").split()
    first_parent = git(repo, "rev-parse", f"{shas[0]}^1").strip() if shas else ""
    if first_parent != good:
        raise BisectError(
            f"--good {good[:10]} is not on the first-parent line of --bad {bad[:10]} (it was merged from a side"
            " branch); give a commit of the main line as --good"
        )
    return [commit(repo, sha) for sha in shas]


@contextmanager
def worktree(repo: Path, sha: str, root: Path) -> Iterator[Path]:
    """`sha` checked out (detached) in a worktree of its own under `root`, removed afterwards. Adding
    and removing worktrees is serialised per repository (git locks its worktree list)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{sha[:12]}-{secrets.token_hex(4)}"  # unique: several steps may check out one revision at once
    common = Path(
        git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    )  # .git may be a file (a linked worktree, a submodule)
    lock = FileLock(str(common / "trainbench-worktrees.lock"))
    with lock:
        git(repo, "worktree", "add", "--detach", "--force", str(path), sha)
    try:
        yield path
    finally:
        with lock:
            try:
                git(repo, "worktree", "remove", "--force", str(path))
            except BisectError:  # already gone; forget it
                git(repo, "worktree", "prune")


def toplevel(folder: Path) -> Path:
    """The top folder of the git checkout `folder` lies in (a project's subfolder names its repository); `folder`
    itself where git finds none, for bisect's own check to refuse in one line."""
    done = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
    )
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else Path(folder).resolve()


def file_at(repo: Path, sha: str, name: str) -> bytes | None:
    """The bytes of `name` at `sha`, None where the revision has no such file."""
    done = subprocess.run(
        ["git", "-C", str(repo), "show", f"{sha}:{name}"], capture_output=True, timeout=GIT_TIMEOUT_S, check=False
    )
    return done.stdout if done.returncode == 0 else None


def dependency_files(repo: Path, sha: str) -> dict[str, bytes | None]:
    return {name: file_at(repo, sha, name) for name in DEPENDENCY_FILES}


def pins(constraints: bytes | None) -> dict[str, str]:
    """`name==version` lines of a constraints file whose environment marker (if any) holds for this
    interpreter, by normalized name (PEP 503)."""
    found: dict[str, str] = {}
    for line in (constraints or b"").decode(errors="replace").splitlines():
        try:
            requirement = Requirement(line.split("#", 1)[0].strip())
        except InvalidRequirement:
            continue
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact and (requirement.marker is None or requirement.marker.evaluate()):
            found[canonicalize_name(requirement.name)] = exact[0]
    return found


def requirements(pyproject: bytes | None) -> set[str]:
    """Every requirement a pyproject.toml declares (dependencies and each extra's), as written."""
    try:
        project = tomllib.loads((pyproject or b"").decode()).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return set()
    extras = project.get("optional-dependencies", {})
    return {*project.get("dependencies", []), *(f"{req} [{extra}]" for extra, reqs in extras.items() for req in reqs)}


def dependency_changes(before: dict[str, bytes | None], after: dict[str, bytes | None]) -> list[str]:
    """What differs between two revisions' dependency files: `torch 2.13.0 -> 2.14.1` per changed pin,
    `+ requirement` / `- requirement` per declared requirement added or removed."""
    old, new = pins(before.get("constraints.txt")), pins(after.get("constraints.txt"))
    changes = [
        f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}"
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
    old_reqs, new_reqs = requirements(before.get("pyproject.toml")), requirements(after.get("pyproject.toml"))
    changes += [f"+ {req}" for req in sorted(new_reqs - old_reqs)] + [f"- {req}" for req in sorted(old_reqs - new_reqs)]
    return changes
