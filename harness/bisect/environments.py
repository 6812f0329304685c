"""The Python a revision runs with: this environment when the revision's dependency files are the
ones it was installed from, else one built for them with uv and cached by the files' hash, so a
dependency bump committed to the repository is bisected like code.

A built environment is a layer over this one: a fresh `uv venv` whose site-packages comes first
and whose `.pth` file adds this environment's site-packages after it. Into the layer uv installs
every pin of the revision's constraints.txt whose version differs from what is installed here
(`--no-deps`: a bumped package keeps its dependencies from below), and every requirement of its
pyproject.toml that nothing here provides (its dependencies, and those of the extras this environment
has; with their dependencies, under the constraints). Only the
changed packages are downloaded, not the whole stack; the layer shadows what it replaces. It lives
in CACHE_DIR/envs/<hash>/ and is reused by every later bisection over the same files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier

from harness.bisect.revisions import DEPENDENCY_FILES, pins, requirements
from harness.cluster.plan import is_trainbench
from harness.errors import BisectError
from harness.settings import REPO_ROOT

READY = "trainbench-env.json"  # written last: a folder without it is an interrupted build, built again
BUILD_TIMEOUT_S = 1800.0
CURRENT = "current"


def files_hash(files: dict[str, bytes | None]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (files[name] or b"(absent)") + b"\0")
    return digest.hexdigest()[:16]


def current_files(repo: Path) -> dict[str, bytes | None]:
    """The dependency files this environment was installed from, as far as bisect of `repo` can know: the running
    checkout's when `repo` is a checkout of trainbench (its own history), else the project's working tree."""
    pyproject = Path(repo) / "pyproject.toml"
    source = REPO_ROOT if is_trainbench(pyproject.read_bytes() if pyproject.is_file() else None) else Path(repo)
    return {name: (source / name).read_bytes() if (source / name).is_file() else None for name in DEPENDENCY_FILES}


def python_for(files: dict[str, bytes | None], cache_dir: Path, repo: Path) -> tuple[str, str]:
    """The interpreter for a revision of `repo` with these dependency files, and its label (`current`, or
    `built <hash>`); builds the layer when none is cached. A BisectError when uv cannot build it."""
    current = current_files(repo)
    if files == current:
        return sys.executable, CURRENT
    key = files_hash(
        {**files, "(base environment)": f"{sys.prefix}\0{files_hash(current)}".encode()}
    )  # a layer is over this environment
    env = Path(cache_dir) / "envs" / key
    python = env / "bin" / "python"
    with FileLock(str(env) + ".lock"):
        if not (env / READY).is_file():
            shutil.rmtree(env, ignore_errors=True)
            build(env, files)
    return str(python), f"built {key}"


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).is_file():
        raise BisectError(
            "a revision's dependency files differ from this environment's, and building its environment needs uv; pip"
            " install 'trainbench[bisect]' (or uv)"
        )
    return found


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _satisfies(installed: str | None, pinned: str) -> bool:
    """Whether the installed version meets the pin `==pinned` as pip reads it (PEP 440: `==2.5` is 2.5.0,
    `==2.5.1` takes 2.5.1+cpu, `==2.*` any 2.x)."""
    return installed is not None and Specifier(f"=={pinned}").contains(installed, prereleases=True)


def changed(files: dict[str, bytes | None]) -> tuple[list[str], list[str]]:
    """What the layer installs: pins whose version differs from this environment's (`name==version`),
    and declared requirements nothing here provides."""
    bumped = [
        f"{name}=={version}"
        for name, version in sorted(pins(files.get("constraints.txt")).items())
        if not _satisfies(_installed(name), version)
    ]
    declared: dict[str, list[Requirement]] = {}  # extra ("" for the dependencies) -> its requirements
    for written in sorted(requirements(files.get("pyproject.toml"))):
        text, _, extra = written.partition(" [")
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.name.lower() != "trainbench" and (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            declared.setdefault(extra.rstrip("]"), []).append(requirement)
    in_use = {
        extra for extra, reqs in declared.items() if not extra or any(_installed(r.name) is not None for r in reqs)
    }  # extras this environment has
    missing = [str(r) for extra in sorted(in_use) for r in declared[extra] if _installed(r.name) is None]
    return bumped, sorted(set(missing))


def build(env: Path, files: dict[str, bytes | None]) -> None:
    uv = _uv()
    env.parent.mkdir(parents=True, exist_ok=True)
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], env)
    python = str(env / "bin" / "python")
    layer = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env).strip())
    (layer / "_trainbench_base.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages())
    )  # this environment after the layer, its own .pth files read
    bumped, missing = changed(files)
    constraints = env / "constraints.txt"
    constraints.write_bytes(files.get("constraints.txt") or b"")
    if bumped:
        _run([uv, "pip", "install", "--quiet", "--python", python, "--no-deps", *bumped], env)
    if missing:
        _run([uv, "pip", "install", "--quiet", "--python", python, "-c", str(constraints), *missing], env)
    (env / READY).write_text(json.dumps({"bumped": bumped, "added": missing}) + "\n")


def _run(command: list[str], env: Path) -> str:
    """`command`'s output; a BisectError with its last line when it fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BisectError(f"building the environment {env} failed: {error}") from None
    if done.returncode:
        why = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise BisectError(
            f"building the environment {env} failed ({' '.join(command[1:3])}: {why}); check that the package index is"
            " reachable and the pins exist"
        )
    return done.stdout
