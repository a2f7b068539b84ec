"""Outputs written whole or not at all, and a full disk told in one line.

Every file explain-attn writes goes through this module:

- `atomic_path` yields a temporary path beside the output; the output is
  replaced by one rename only when the writer succeeded. A failure, a
  Ctrl-C or a kill leaves the earlier file untouched.
- `atomic_files` does the same for a *set* of files that belong together
  (a trained model, its history and its record; a report's HTML and
  JSON): all are written to temporary names first and renamed together
  only when every one of them was written. The renames are done with
  Ctrl-C held back, and a set whose renames a kill cut short is completed
  by the next run (`clean_stale`), so a reader never sees a mix of two runs.
- `reserve` allocates a file's full size before it is written in place,
  so a full disk is an `OSError` at that point, never a ``SIGBUS`` of a
  memory-mapped write.
- `DiskFullError` (a `ValueError`) is what running out of space becomes:
  one line naming the file, the space it needed and the space free, and
  saying that the earlier output is unchanged.

Temporary names are hidden siblings, ``.<name>.partial-<pid>...``, so that
`clean_stale` removes those that a killed process (a dead pid) left behind.
"""

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

__all__ = [
    "is_disk_full",
    "DiskFullError",
    "atomic_files",
    "atomic_path",
    "check_space",
    "check_writable",
    "clean_stale",
    "disk_full",
    "partial_name",
    "reserve",
]

_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
_MARGIN = 1 << 20  # What a file system needs besides the data (1 MiB).


class DiskFullError(ValueError):
    """An output did not fit on its disk; nothing of it was written."""


def _size(count):
    """``count`` bytes in words: ``"512 bytes"``, ``"3.1 MiB"``."""
    if count < 1024:
        return f"{count:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            break
    return f"{count:.1f} {unit}"


def _free(directory):
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def is_disk_full(error):
    """Whether ``error`` (or an error it wraps) is a full disk or quota."""
    seen = set()
    if isinstance(error, DiskFullError):
        return True
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) in _FULL:
            return True
        if any(text in str(error) for text in _FULL_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full(path, *, needed=None, kept=None):
    """The `DiskFullError` for ``path``: what it needed, what is free, and
    what is kept (by default: the earlier ``path``, if any, unchanged)."""
    path = Path(path)
    free = _free(path.parent if str(path.parent) else ".")
    amounts = []
    if needed is not None:
        amounts.append(f"needs {_size(needed)}")
    if free is not None:
        amounts.append(f"{_size(free)} free")
    detail = f" ({', '.join(amounts)})" if amounts else ""
    if kept is None:
        kept = (
            f"the earlier {str(path)!r} is unchanged"
            if path.exists()
            else "nothing of it was written"
        )
    return DiskFullError(
        f"Cannot write {str(path)!r}: the disk is full{detail}; {kept}. "
        "Free space or write elsewhere."
    )


def check_space(path, needed):
    """Raises `DiskFullError` unless ``needed`` bytes (plus a margin) fit
    in ``path``'s directory. Unknown free space passes."""
    path = Path(path)
    free = _free(path.parent if str(path.parent) else ".")
    if free is not None and free < needed + _MARGIN:
        raise disk_full(path, needed=needed + _MARGIN)


def reserve(handle, size):
    """Allocates ``size`` bytes for the open file ``handle`` now.

    A memory-mapped or in-place write into a sparse file fails with
    ``SIGBUS`` (the process dies) when the disk fills; after this, the
    blocks are the file's. Where `os.posix_fallocate` is missing, the
    file is extended and the free space checked instead.

    Raises:
        OSError: ``ENOSPC`` when the space is not there.
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        try:
            allocate(handle.fileno(), 0, size)
            return
        except OSError as error:
            if error.errno in _FULL:
                raise
            # EINVAL/EOPNOTSUPP: the file system cannot; check instead.
    free = _free(Path(handle.name).parent)
    if free is not None and free < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), handle.name)
    handle.truncate(size)


def check_writable(path):
    """Checks before a long run that ``path`` can be written; writes nothing.

    Raises:
        ValueError: If the directory is missing or not writable, or the path
            is a directory.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(
            f"Cannot write {str(path)!r}: it is a directory. Choose a file "
            "path."
        )
    if not directory.is_dir():
        raise ValueError(
            f"Cannot write {str(path)!r}: the directory {str(directory)!r} "
            "does not exist. Create it first or choose another output path."
        )
    try:  # A real probe: permissions, read-only file systems, quotas.
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".probe.")
    except OSError as error:
        if error.errno in _FULL:
            raise disk_full(path) from None
        raise ValueError(
            f"Cannot write {str(path)!r}: the directory {str(directory)!r} "
            f"is not writable ({error.strerror}). Choose another output path."
        ) from None
    os.close(handle)
    os.remove(probe)


def partial_name(path):
    """The hidden sibling name of ``path``'s temporary: ``.<name>.partial-
    <pid>`` (`clean_stale` knows the pid)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _stale(path, kind):
    """Hidden siblings ``.<name>.<kind>-<pid>...`` of dead processes."""
    path = Path(path)
    prefix = f".{path.name}.{kind}-"
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return []
    found = []
    for candidate in candidates:
        if not candidate.name.startswith(prefix):
            continue
        digits = candidate.name[len(prefix) :].split("-")[0].split(".")[0]
        if digits.isdigit() and not _pid_alive(int(digits)):
            found.append(candidate)
    return found


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale(*paths):
    """Tidies what killed runs (dead pids) left beside ``paths``.

    Puts back a folder moved aside (``.<name>.old-<pid>``) that was not
    replaced, completes a set of files whose renames a kill cut short
    (`atomic_files`) and removes temporary files and folders.
    """
    for path in paths:
        path = Path(path)
        for old in _stale(path, "old"):
            if path.exists():
                _remove(old)
            else:
                with contextlib.suppress(OSError):
                    old.rename(path)
        for partial in _stale(path, "partial"):
            if partial.is_dir() and not partial.is_symlink():
                _roll_forward(partial)  # Completes a committed set.
            else:
                _remove(partial)


@contextlib.contextmanager
def _holding_interrupts():
    """Delays Ctrl-C (and SIGTERM) until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _temporary_folder(path):
    try:
        return Path(
            tempfile.mkdtemp(
                dir=path.parent, prefix=f".{path.name}.partial-{os.getpid()}-"
            )
        )
    except OSError as error:
        if error.errno in _FULL:
            raise disk_full(path) from None
        raise ValueError(
            f"Cannot write {str(path)!r}: {error.strerror}. Choose a "
            "writable output path."
        ) from None


@contextlib.contextmanager
def atomic_path(path, *, needed=None, kept=None):
    """Yields a temporary path beside ``path``; renames it there on success.

    The temporary path sits in a private folder in ``path``'s directory (so
    the final rename stays on one file system) and keeps ``path``'s name,
    hence its suffix (Keras picks the format from it). The writer creates
    the file, so it gets the usual permissions. On failure the folder is
    removed: a reader never sees a half-written file and an existing file
    stays untouched.

    Args:
        path: The output.
        needed: Bytes the file will take, if known: checked first.
        kept: What is kept if the disk fills (a phrase), for the message.

    Raises:
        ValueError: If the directory is missing or not writable, or if
            ``path`` is a directory.
        DiskFullError: If the disk or quota fills while writing.
    """
    with atomic_files([path], needed=needed, kept=kept) as (temporary,):
        yield temporary


@contextlib.contextmanager
def atomic_files(paths, *, needed=None, kept=None):
    """Yields temporary paths for ``paths``; renames them all on success.

    The temporaries keep the outputs' names, in one private folder beside
    them (the outputs share one directory). Only when the block ends
    without error are they renamed onto ``paths``, together: a ``COMMIT``
    file lists the renames first, so that `clean_stale` completes them
    after a kill. A path whose temporary was not created is removed, so
    the set never holds a member of an earlier run.

    Args:
        paths: The outputs, in one directory.
        needed: Bytes they will take together, if known: checked first.
        kept: What is kept if the disk fills (a phrase), for the message.

    Raises:
        ValueError: As `atomic_path`, or if the paths are in different
            directories.
        DiskFullError: If the disk or quota fills while writing.
    """
    paths = [Path(path) for path in paths]
    if len({path.parent for path in paths}) != 1:
        raise ValueError(
            "The files of a set must share one directory. Received: "
            f"paths={[str(path) for path in paths]}"
        )
    for path in paths:
        check_writable(path)
    if needed is not None:
        check_space(paths[0], needed)
    folder = _temporary_folder(paths[0])
    temporaries = [folder / path.name for path in paths]
    try:
        try:
            yield temporaries
            _write_commit(folder, paths)
        except Exception as error:
            # Broad on purpose: h5py and Keras wrap ENOSPC in their own
            # types; everything but a full disk is re-raised unchanged.
            if not is_disk_full(error):
                raise
            raise _set_full(error, paths, temporaries, needed, kept) from None
        _roll_forward(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _set_full(error, paths, temporaries, needed, kept):
    """The `DiskFullError` of a set: names the file being written."""
    filename = str(getattr(error, "filename", None) or "")
    path = paths[0]
    for temporary, candidate in zip(temporaries, paths, strict=True):
        if filename == str(temporary) or temporary.exists():
            path = candidate  # The last one begun.
    if needed is None:
        written = sum(t.stat().st_size for t in temporaries if t.is_file())
        needed = written or None
    if kept is None and len(paths) > 1:
        names = ", ".join(p.name for p in paths)
        kept = (
            f"the earlier {names} are unchanged"
            if any(p.exists() for p in paths)
            else "nothing of them was written"
        )
    return disk_full(path, needed=needed, kept=kept)


def _write_commit(folder, paths):
    lines = [
        f"{'move' if (folder / p.name).exists() else 'remove'} {p.name}"
        for p in paths
    ]
    temporary = folder / ".COMMIT.tmp"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.rename(folder / "COMMIT")


def _roll_forward(folder):
    """Does the renames that ``folder``'s ``COMMIT`` lists (again: each is
    done at most once), with Ctrl-C held back; a folder without ``COMMIT``
    was not finished, and is only removed."""
    commit = folder / "COMMIT"
    if commit.is_file():
        lines = commit.read_text(encoding="utf-8").splitlines()
        with _holding_interrupts():
            for line in lines:
                action, name = line.split(" ", 1)
                target = folder.parent / name
                if action == "move" and (folder / name).exists():
                    os.replace(folder / name, target)
                elif action == "remove":
                    _remove(target)
    _remove(folder)
