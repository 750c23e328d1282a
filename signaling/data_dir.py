"""The data folder is the service's alone: 0700, and every file in it 0600.

The folder holds the SQLite database (with its -wal and -shm files: session and credential
hashes, the service log), the documents' ciphertext and any keys. Nobody else on the host has
anything to read there, so other users get no access at all.

`secure_data_dir(path)` creates the folder 0700, or tightens an existing one: the folder and
every folder under it to 0700, every file to 0600 (symbolic links are left alone). Files
created afterwards get the same modes when the process runs with `PRIVATE_UMASK`
(`set_private_umask()` at the start of `serve` and of the CLI); `private_file(path)` gives
one file mode 0600 whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# New files 0600 and new folders 0700, whoever creates them (SQLite, aiohttp, our code).
PRIVATE_UMASK = 0o077


def set_private_umask() -> int:
    """Make the process's umask PRIVATE_UMASK; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def _tighten(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.lstat().st_mode) != mode:
        os.chmod(path, mode)


def secure_data_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` with mode 0700 (parents as needed), or make an existing one and all below
    it private: folders 0700, regular files 0600. Raises OSError if a mode cannot be set
    (e.g. a file owned by another user): better not to start than to run exposed."""
    root = Path(path)
    root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(root, DIR_MODE)  # mkdir's mode is filtered by the umask, and old folders keep theirs
    for current, folders, files in os.walk(root):  # does not descend into linked folders
        base = Path(current)
        for name in folders:
            folder = base / name
            if stat.S_ISDIR(folder.lstat().st_mode):
                _tighten(folder, DIR_MODE)
        for name in files:
            file = base / name
            if stat.S_ISREG(file.lstat().st_mode):
                _tighten(file, FILE_MODE)
    return root


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create `path` empty with mode 0600 if it does not exist, else set its mode to 0600."""
    file = Path(path)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if stat.S_ISREG(file.lstat().st_mode):
            _tighten(file, FILE_MODE)
    else:
        os.close(fd)
        os.chmod(file, FILE_MODE)  # O_CREAT's mode is filtered by the umask too
    return file
