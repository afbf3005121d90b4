"""Writing files safely, and the seal that proves an mlp_gpu file whole: used by every file format.

How a save works, and why:

1. The whole HDF5 file is built in memory (h5py on a ``BytesIO``). libhdf5 writes through its own
   I/O layer and reports write errors from object clean-up, where h5py can only print them: on a
   full disk it once left an incomplete file that looked complete, and under a file-size limit it
   crashed the interpreter in its close. In memory it cannot meet a disk error at all.
2. The bytes are sealed (a SHA-256 of everything after a 512-byte user block, written into it).
3. They are written to a new temporary file beside the target with plain Python file I/O, whose
   every error (no space, file too large, I/O error, quota, permission) Python raises, then fsynced.
4. The temporary file is read back and compared with what was meant to be written, and the seal is
   checked; only then does it replace the target (``os.replace``, atomic), and the folder is fsynced.

Any failure raises :class:`SaveError` (an ``OSError``) naming the path and the cause, removes the
temporary file and leaves the previous file as it was. A new file gets the mode the umask gives
(0644 under the usual 022); a file saved over keeps its mode.

The cost is one in-memory copy of the file (about 1 MB for the reference net, 3 MB with Adam's state)
and one read-back, against a safety that does not depend on libhdf5 reporting errors.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import stat
from pathlib import Path

USERBLOCK = 512
SEAL = b"mlp_gpu sha256 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ModelFileError(ValueError):
    """A file is not an mlp_gpu model/weights file, or does not fit the model."""


class SaveError(OSError):
    """A save failed (``errno``: ENOSPC, EFBIG, EIO, EDQUOT, EACCES, ...); the file at ``filename``
    is as it was before the save."""

    def __str__(self):
        code = errno.errorcode.get(self.errno, str(self.errno))
        return f"path: {self.filename!r}: cannot save: {self.strerror} [{code}]"


def check_save_target(path) -> Path:
    """The folder a save to ``path`` would write in, or an error saying why it cannot (before any work)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory; expected a file name such as model.h5")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"path: folder {str(folder)!r} does not exist")
    return folder


def hdf5_image(write, userblock: int = 0) -> bytes:
    """The bytes of a new HDF5 file filled by ``write(h5file)``, built in memory only."""
    import h5py

    buffer = io.BytesIO()
    # libver="latest": checksummed HDF5 metadata as a second line of defence
    with h5py.File(buffer, "w", libver="latest", userblock_size=userblock) as f:
        write(f)
    return buffer.getvalue()


def _digest(data) -> str:
    return hashlib.sha256(data).hexdigest()


def seal(image: bytes) -> bytes:
    """An HDF5 image made with a 512-byte user block, with its SHA-256 written into that block."""
    if image[USERBLOCK:USERBLOCK + len(HDF5_SIGNATURE)] != HDF5_SIGNATURE:
        raise ValueError("seal: expected an HDF5 image built with a 512-byte user block")
    header = SEAL + _digest(memoryview(image)[USERBLOCK:]).encode() + b"\n"
    return header.ljust(USERBLOCK, b"\0") + image[USERBLOCK:]


def verify_seal(path) -> None:
    """Raise ModelFileError if an mlp_gpu file is damaged; let other HDF5 files (Keras) through."""
    with open(path, "rb") as fh:
        head = fh.read(USERBLOCK + len(HDF5_SIGNATURE))
        if head.startswith(SEAL):
            stored = head[len(SEAL):len(SEAL) + 64].decode("ascii", "replace")
            fh.seek(USERBLOCK)
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
            if stored != digest.hexdigest():
                raise ModelFileError(f"path: {str(path)!r} is damaged: its SHA-256 does not match its "
                                     "contents (a truncated or altered file)")
        elif head[USERBLOCK:] == HDF5_SIGNATURE:
            raise ModelFileError(f"path: {str(path)!r} is damaged: it has an HDF5 user block but no valid "
                                 "mlp_gpu checksum header")


def _create_temp(path: Path, folder: Path):
    """A new empty file beside ``path`` (mode from the umask, as open() gives), as (fd, temp path)."""
    for _ in range(100):
        tmp = folder / f".{path.name[:200]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _write_all(fd, data, mode):
    with open(fd, "wb") as fh:
        if mode is not None:
            os.fchmod(fd, mode)
        fh.write(data)
        fh.flush()
        os.fsync(fd)


def _fsync_folder(folder):
    try:  # make the rename itself durable; not every file system can
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write_bytes(path, data: bytes, verify=None) -> None:
    """Write ``data`` to ``path`` so that the file there is either the old one or all of ``data``.

    ``verify(temp_path)``, if given, checks the written file before it replaces ``path`` (raise to
    refuse it). Raises :class:`SaveError` for any failure to write.
    """
    path = Path(path)
    folder = check_save_target(path)
    try:
        old_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        old_mode = None
    kept = "the previous file is unchanged" if old_mode is not None else "no file was written"
    try:
        fd, tmp = _create_temp(path, folder)
    except OSError as exc:
        raise SaveError(exc.errno, f"cannot write in folder {str(folder)!r} ({exc.strerror}); {kept}",
                        str(path)) from None
    stage = "writing"
    try:
        _write_all(fd, data, old_mode)
        stage = "checking"
        if tmp.read_bytes() != data:
            raise OSError(errno.EIO, "the file read back differs from what was written")
        if verify is not None:
            verify(tmp)
        stage = "replacing"
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SaveError(getattr(exc, "errno", None) or errno.EIO,
                        f"{reason} while {stage} {tmp.name}; {kept}", str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def save_hdf5(path, write, sealed: bool = True) -> None:
    """Build an HDF5 file with ``write(h5file)`` and save it safely; sealed with a SHA-256 unless
    ``sealed`` is False (files meant for other programs, such as Keras)."""
    check_save_target(path)  # before building the file: a wrong path fails fast
    if sealed:
        atomic_write_bytes(path, seal(hdf5_image(write, USERBLOCK)), verify=verify_seal)
    else:
        atomic_write_bytes(path, hdf5_image(write))
