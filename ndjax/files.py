"""Files other processes may read or hold: an atomic replace (a reader sees the old or the new file, with the mode
`open()` would give it), and an exclusive lock against other processes (`flock` on a descriptor kept open,
re-entrant within this process) that keeps two paper-trading processes off one ledger and two fetches off one
folder. Standard library only, so the fetch script loads no JAX."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

_HELD: dict[str, list[int]] = {}
"""Files this process has locked: real path -> [file descriptor holding the lock, open count]."""


class FileLocked(OSError):
    """The file is locked by another process, or cannot be opened; the message says which."""


def lock(path: Path) -> None:
    """Lock `path` (created if missing) against other processes; this process may open it again."""
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # a read-only file can be locked too (writing it fails later, saying so)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise FileLocked(f"cannot be opened ({e.strerror})") from None
    except OSError as e:
        raise FileLocked(f"cannot be opened ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FileLocked("in use by another process") from None
    _HELD[key] = [fd, 1]


def unlock(path: Path) -> None:
    """Release one `lock` of `path`; the last release closes the descriptor and frees the file."""
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.close(held[0])  # after sqlite's own connection is closed: closing a descriptor drops the process's locks


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in its folder, fsynced and renamed into place (the folder is
    fsynced too): a reader, or a process killed half-way, sees the old or the new file, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode open() would give it
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


TEMP_SUFFIX = ".tmp"
"""Ending of `atomic_write_text`'s temporary files (`.NAME.XXXX.tmp`), which a killed writer may leave behind."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
