"""Extension points named by import path: `package.module:attribute` (the attribute may be dotted, `mod:Class.make`).

A spec holds the path as a string, so it stays JSON and every process that trains it (a DDP child, a torchrun node,
a Ray task) resolves the same object by importing it, as `importlib.metadata` entry points do. The module must be
importable there: installed, or on the path of the project the run starts from (pytest's rootdir and the working
directory are, for a case started by trainbench: `importable` puts it on the path of the command line's process
and the pytest session, `launch` on that of every process they start). A name without a colon is not an import
path: a timm model, an albumentations transform, a built-in loss or optimizer.
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from harness.errors import ExtensionError

SEPARATOR = ":"


def importable(project: Path) -> None:
    """The project's folder on this process's path before the installed packages, as in every process trainbench
    starts for it (they start in it, with it first on their PYTHONPATH: `launch`), so its own extensions resolve to
    the same code here and there."""
    folder = str(project)
    if folder not in sys.path:
        sys.path.insert(1, folder)


def is_import_path(name: str) -> bool:
    """Whether `name` names an extension (`package.module:attribute`), not a built-in name."""
    return SEPARATOR in name


def short_name(name: str) -> str:
    """How ids and tables name `name`: itself, or an import path's last attribute (`mypkg.nets:TinyNet` ->
    `TinyNet`), so a case id stays one readable, `-k` friendly word per part."""
    return name.rpartition(SEPARATOR)[2].rpartition(".")[2] if is_import_path(name) else name


def resolve(path: str, what: str) -> Any:
    """The object `path` (`package.module:attribute`) names; `what` says what it is for in the error ("model",
    "loss", ...). An ExtensionError, one line with the fix, when the path is malformed, the module cannot be
    imported, or it has no such attribute."""
    module_name, _, attribute = path.partition(SEPARATOR)
    if not module_name or not attribute or SEPARATOR in attribute:
        raise ExtensionError(f"{what} {path!r} is not an import path; write it as package.module:attribute")
    try:
        found: Any = import_module(module_name)
    except ImportError as error:
        raise ExtensionError(
            f"{what} {path!r}: module {module_name!r} cannot be imported ({error}); install it, or run from the"
            " folder that holds it"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ExtensionError(
                f"{what} {path!r}: {module_name} has no attribute {attribute!r}; check the name after the colon"
            ) from None
    return found


def resolve_callable(path: str, what: str) -> Any:
    """`resolve`, for an extension that must be called (a model factory, a transform, a schedule)."""
    found = resolve(path, what)
    if not callable(found):
        raise ExtensionError(f"{what} {path!r} is a {type(found).__name__}, not something to call; name a function")
    return found


def call(path: str, what: str, form: str, *args: Any, **kwargs: Any) -> Any:
    """What the extension `path` returns when called with `args` and `kwargs` (`form` says how, in the error:
    "factory(num_classes=N)"); a call its signature refuses is an ExtensionError naming the form it must take."""
    found = resolve_callable(path, what)
    try:
        return found(*args, **kwargs)
    except TypeError as error:
        raise ExtensionError(f"{what} {path!r} cannot be called as {form} ({error}); give it that signature") from None
