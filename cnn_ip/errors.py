"""The one exception type commands raise for user mistakes (kept apart from ``cli`` so
that ``python -m cnn_ip.cli`` and the console script share the same class), and the
checks of a command's output directory that every command shares."""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in what the user gave us; printed as one line, exit status 2."""


def cannot_write(where: str, error: OSError) -> UserError:
    """The one line for an output the user named that the system refused."""
    return UserError(f"{where}: cannot write {error.filename}: {error.strerror or error}")


def check_output_dir(where: str, out, *, previous: str | None = None) -> None:
    """UserError (``where: what is wrong``; ``where`` starts with the command's name)
    unless ``out`` can be the command's output directory, checked before any work so that
    a mistake costs nothing and writes nothing: it names a path, and the nearest part of
    it that exists is a directory (else making it fails after the work).  ``previous``:
    the file an earlier output of the command holds; a non-empty ``out`` must hold it,
    since the command replaces it whole."""
    if not str(out):
        raise UserError(f"{where}: must name a directory, got ''")
    out = Path(out)
    if previous and out.name in ("", ".."):     # "." or "..": a rename onto it fails, late
        raise UserError(f"{where}: must name a directory of its own (the output replaces "
                        "it whole), not . or ..")
    existing = next(path for path in (out, *out.absolute().parents) if path.exists())
    if not existing.is_dir():
        raise UserError(f"{where}: {existing} exists and is not a directory")
    if previous and out.is_dir() and any(out.iterdir()) and not (out / previous).exists():
        command = where.split(":")[0].split()[0]
        raise UserError(f"{where}: not empty and not a previous {command} output; "
                        "give an empty or new directory")
