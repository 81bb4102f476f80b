"""What a run created, so that a run ended by a user's error removes exactly that and nothing else.

Every place that makes a folder or a file for a run reports it here (:func:`makedirs`, :func:`note_file`):
RecBole's ``ensure_dir`` (patched in :mod:`recbole_diffrec.compat`), the log file, the tensorboard writer, the
split's caches and the checkpoints. While a :func:`tracking` block is open, those reports are collected;
:func:`discard` then removes the files, and the folders the run made that are empty once its files are gone.
A folder that existed before, or that another process made, is never a candidate: a folder counts as made
by this run only when this run's own ``mkdir`` made it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


class Created:
    """The files and folders one run made, in the order it made them."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.dirs: list[str] = []


_OPEN: list[Created] = []  # the tracking blocks now open in this process, outermost first


def makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, reporting each folder this call made."""
    target = os.path.abspath(path)
    missing = []
    probe = target
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue  # made meanwhile by another process (or a file of that name: makedirs below says so)
        note_dir(folder)
    os.makedirs(target, exist_ok=True)


def note_dir(path: str) -> None:
    for created in _OPEN:
        created.dirs.append(os.path.abspath(path))


def note_file(path: str) -> None:
    """Report a file this run made (call it only for a file that did not exist before the run wrote it)."""
    for created in _OPEN:
        created.files.append(os.path.abspath(path))


def new_file(path: str) -> bool:
    """Whether `path` does not exist yet: a writer that replaces an existing file did not create it."""
    return not os.path.lexists(path)


@contextlib.contextmanager
def tracking() -> Iterator[Created]:
    """Collect what is made inside; blocks nest (an outer block also sees what an inner one collects)."""
    created = Created()
    _OPEN.append(created)
    try:
        yield created
    finally:
        _OPEN.remove(created)


def discard(created: Created) -> None:
    """Remove the files `created` lists, then each folder it lists that is empty by then, deepest first."""
    for path in reversed(created.files):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            os.remove(path)
    for folder in sorted(set(created.dirs), key=lambda p: p.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):  # not empty (another run's files), or gone: left alone
            os.rmdir(folder)


def note_tensorboard(writer, names_before: set[str] | None) -> None:
    """Report what RecBole's tensorboard writer made: its event files (named by this process's id) and its
    folder, when that folder was not among `names_before` (the log root's entries before the writer)."""
    folder = os.path.abspath(writer.get_logdir() if hasattr(writer, "get_logdir") else writer.log_dir)
    root = os.path.dirname(folder)
    if names_before is None:  # the root itself was made for it
        note_dir(root)
    if names_before is None or os.path.basename(folder) not in names_before:
        note_dir(folder)
    marker = f".{os.getpid()}."
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.startswith("events.out.tfevents.") and marker in name:
                note_file(os.path.join(folder, name))


def entries(folder: str) -> set[str] | None:
    """The names in `folder`, or None where it does not exist."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return None


def unwritable(path: str) -> str:
    """Why a folder could not be made or written at `path` ('' when it can), found without writing anything:
    the nearest part of it that exists must be a folder this process may write in."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return ""
