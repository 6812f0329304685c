"""A real git repository built from this project's own files, with commits on top: what the bisect
tests search through."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.settings import REPO_ROOT

PROJECT_FILES = ("harness", "benchmarks", "conftest.py", "pytest.ini", "pyproject.toml", "constraints.txt", "README.md")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bisect test",
    "GIT_AUTHOR_EMAIL": "bisect@example.invalid",
    "GIT_COMMITTER_NAME": "bisect test",
    "GIT_COMMITTER_EMAIL": "bisect@example.invalid",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    ).stdout.strip()


def project_repo(root: Path) -> Path:
    """This checkout's project files (tracked or new, not ignored; as they are in the working tree),
    committed as `base`."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others", "--exclude-standard", *PROJECT_FILES],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in tracked:
        source, target = REPO_ROOT / name, repo / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base: the project as it is")
    return repo


def edit(repo: Path, path: str, old: str | None, new: str) -> None:
    """Replace `old` by `new` in `path` (which holds it once), or append `new` when `old` is None."""
    target = repo / path
    text = target.read_text()
    if old is None:
        text += new
    else:
        assert text.count(old) == 1, f"{old!r} is not once in {path}"
        text = text.replace(old, new)
    target.write_text(text)


def commit(repo: Path, message: str) -> str:
    git(repo, "commit", "-q", "-am", message)
    return git(repo, "rev-parse", "HEAD")


def harmless(repo: Path, number: int) -> str:
    edit(repo, "README.md", None, f"\nA note ({number}) that changes nothing a benchmark measures.\n")
    return commit(repo, f"README: note {number}")


def wreck_fastvit_lr(repo: Path) -> str:
    """The FastViT recipe's lr 100 x higher: the smoke run (lr scaled to its batch) loses its pretrained features."""
    edit(
        repo,
        "harness/catalog.py",
        "        lr=1e-3,\n        weight_decay=0.05,",
        "        lr=1e-1,\n        weight_decay=0.05,",
    )
    return commit(repo, "FastViT recipe: lr 1e-1")


def slow_data_path(repo: Path) -> str:
    """30 ms more per image in the dataset's __getitem__: the loader becomes the bottleneck. The smoke case trains
    at about 37 images/s on a 1-CPU node (27 ms an image), so about 17 after: a drop of half, beyond a 30 % tolerance
    and the noise band of 2 seeds a side (10 ms, a drop of 27 to 40 %, sat on the tolerance)."""
    edit(
        repo,
        "harness/data/dataset.py",
        "from collections.abc import Callable, Sequence\n",
        "import time\nfrom collections.abc import Callable, Sequence\n",
    )
    edit(
        repo,
        "harness/data/dataset.py",
        "    def __getitem__(self, key: int | tuple[int, int]):\n",
        "    def __getitem__(self, key: int | tuple[int, int]):\n        time.sleep(0.03)\n",
    )
    return commit(repo, "data: check each sample (slow)")


def pin(repo: Path, package: str, version: str) -> str:
    """A constraints.txt pin moved to `version`, or added where constraints.txt has none for `package`."""
    line = next(
        (line for line in (repo / "constraints.txt").read_text().splitlines() if line.startswith(f"{package}==")), None
    )
    edit(repo, "constraints.txt", line + "\n" if line else None, f"{package}=={version}\n")
    return commit(repo, f"constraints: {package} {version}")
