"""The one output rule of every command that writes a file or a folder.

A command calls :func:`check_output` before any long work, then writes through
:func:`atomic_output` (a file) or :func:`atomic_output_dir` (a folder):

- an output that is an input, lies inside an input folder, or (for a folder)
  holds an input is refused, after resolving symlinks and ``..``, and hard
  links (same inode);
- an existing output is refused unless ``force``;
- the content goes to a temporary name in the output's folder and is renamed
  into place; without ``force`` the final name is created exclusively
  (``os.link`` for a file, ``rename`` onto a missing or empty folder), so a
  concurrent run that got there first makes this one fail instead of being
  replaced;
- the temporary is removed on any exit, KeyboardInterrupt included (the CLI
  turns SIGTERM into an exit that runs the same cleanup). Only SIGKILL can
  leave one, always under a hidden ``.NAME.*.tmp`` name, never the final one.

:func:`atomic_write_bytes`, :func:`atomic_write_files` (several files that
appear together) and :func:`staged_directory` are the unchecked, replacing
primitives, for files a command writes inside its own staging folder or
replaces by design (the app's assets).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ktp_tflite.train.errors import KtpError

PathLike = str | os.PathLike


class OutputPathError(KtpError, ValueError):
    """An output cannot be written where asked (missing parent folder, wrong kind)."""


class OutputExistsError(OutputPathError):
    """The output exists (or appeared while writing) and ``force`` was not given."""


class OutputIsInputError(OutputPathError):
    """Writing the output would overwrite or delete one of the command's inputs."""


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask."""
    return 0o666 & ~_umask()


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _inside(child: Path, folder: Path) -> bool:
    return child == folder or child.is_relative_to(folder)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _input_conflict(path: Path, inputs: Iterable[PathLike | None], folder: bool) -> str | None:
    """Why writing ``path`` would touch an input, or None."""
    real = Path(os.path.realpath(path))
    for item in inputs:
        if item is None:
            continue
        item = Path(item)
        item_real = Path(os.path.realpath(item))
        if real == item_real or _same_file(path, item):
            return f"would overwrite the input {item}"
        if item_real.is_dir() and _inside(real, item_real):
            return f"lies inside the input folder {item}, which it would change"
        if folder and _inside(item_real, real):
            return f"holds the input {item}, which replacing the folder would delete"
    return None


def _folder_is_empty(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def check_output(
    path: PathLike,
    *,
    inputs: Iterable[PathLike | None] = (),
    force: bool = False,
    folder: bool = False,
    marker: str | None = None,
) -> Path:
    """Check that ``path`` may be written; call it before any long work.

    Args:
      path: the output file (or folder, with ``folder=True``).
      inputs: every file or folder the command reads (None entries are ignored).
      force: an existing output may be replaced.
      folder: the output is a folder; an existing empty folder counts as free.
      marker: for a folder, a file that an earlier output of the same command
        holds; a non-empty folder without it is never replaced, even with
        ``force`` (so ``--force`` cannot wipe a folder of other files).

    Returns:
      ``path`` as a Path.

    Raises:
      OutputIsInputError: the output is, holds or lies inside an input.
      OutputExistsError: the output exists and ``force`` is not given.
      OutputPathError: the parent folder is missing, or the output is a
        folder where a file is asked for (or the reverse).
    """
    path = Path(path)
    conflict = _input_conflict(path, inputs, folder)
    if conflict is not None:
        raise OutputIsInputError(f"{path}: {conflict}; choose another output")
    parent = _parent(path)
    if not parent.is_dir():
        raise OutputPathError(f"{path}: folder {parent} does not exist; create it first")
    if not os.path.lexists(path):
        return path
    if folder:
        if not path.is_dir():
            raise OutputPathError(f"{path}: is a file, not a folder; choose a folder name")
        if _folder_is_empty(path):
            return path
        if marker is not None and not (path / marker).exists():
            raise OutputPathError(
                f"{path}: holds files this command did not write (no {marker}); it is not "
                "replaced even with --force: choose a new or empty folder"
            )
        if not force:
            raise OutputExistsError(f"{path}: exists and is not empty; pass --force to replace it")
        return path
    if path.is_dir():
        raise OutputPathError(f"{path}: is a folder; give a file name")
    if not force:
        raise OutputExistsError(f"{path}: exists; pass --force to replace it")
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish_file(temporary: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if the name exists: never replaces
    except FileExistsError:
        raise OutputExistsError(
            f"{path}: appeared while this run was writing it (another run?); it was left as "
            "it is; pass --force to replace it"
        ) from None
    except OSError as error:
        if error.errno not in (
            errno.EPERM,
            errno.EACCES,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.EMLINK,
            errno.ENOSYS,
        ):
            raise
        # No hard links here (some network and FAT file systems): claim the
        # name exclusively, then rename the content over the placeholder.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise OutputExistsError(
                f"{path}: appeared while this run was writing it (another run?); it was left "
                "as it is; pass --force to replace it"
            ) from None
        os.replace(temporary, path)


@contextlib.contextmanager
def atomic_output(path: PathLike, *, inputs: Iterable[PathLike | None] = (), force: bool = False) -> Iterator[Path]:
    """Yield a temporary file beside ``path``; on success it becomes ``path``.

    Write the content into the yielded path (it exists, empty). On an
    exception (KeyboardInterrupt included) the temporary is removed and
    ``path`` is left as it was. Checks as :func:`check_output`.

    Raises:
      OutputPathError: see :func:`check_output`; OutputExistsError also when
        ``path`` appears while writing and ``force`` is not given.
    """
    path = check_output(path, inputs=tuple(inputs), force=force)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=_parent(path))
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())  # mkstemp makes 0600; give what open() would
        _fsync(temporary)
        _publish_file(temporary, path, force)
    finally:
        temporary.unlink(missing_ok=True)


def write_output(path: PathLike, data: bytes, *, inputs: Iterable[PathLike | None] = (), force: bool = False) -> Path:
    """Write ``data`` to ``path`` under the output rule (see :func:`atomic_output`)."""
    with atomic_output(path, inputs=inputs, force=force) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, replacing it.

    The unchecked primitive: no input check, an existing file is replaced.
    Commands use :func:`write_output` for what the user names.
    """
    path = Path(path)
    if not _parent(path).is_dir():
        raise OutputPathError(f"{path}: folder {_parent(path)} does not exist; create it first")
    with atomic_output(path, force=True) as temporary:
        temporary.write_bytes(data)


def atomic_write_files(contents: Mapping[PathLike, bytes]) -> None:
    """Write several files, each through a temporary beside it; rename them only once all are written.

    The unchecked, replacing primitive of :func:`atomic_write_bytes` for files
    that belong together (a report and its table): a failure while writing
    any of them (a missing folder, a folder in the way, a full disk, Ctrl-C)
    leaves every file as it was and no temporary behind. The renames come
    last, one per file.

    Raises:
      OutputPathError: a parent folder is missing, or a path is a folder.
    """
    paths = [Path(path) for path in contents]
    for path in paths:
        if not _parent(path).is_dir():
            raise OutputPathError(f"{path}: folder {_parent(path)} does not exist; create it first")
    with contextlib.ExitStack() as stack:
        for path, data in zip(paths, contents.values()):
            stack.enter_context(atomic_output(path, force=True)).write_bytes(data)


def _publish_folder(staging: Path, path: Path, force: bool, marker: str | None) -> None:
    try:
        os.rename(staging, path)  # creates the name, or replaces an empty folder
        return
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise OutputPathError(f"{path}: cannot be created ({error.strerror})") from error
    if not force:
        raise OutputExistsError(
            f"{path}: was filled while this run was writing it (another run?); it was left as "
            "it is; pass --force to replace it"
        )
    check_output(path, force=True, folder=True, marker=marker)
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=_parent(path)))
    try:
        os.rename(path, old / path.name)
        try:
            os.rename(staging, path)
        except BaseException:
            os.rename(old / path.name, path)  # put the previous output back
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(
    path: PathLike,
    *,
    inputs: Iterable[PathLike | None] = (),
    force: bool = False,
    marker: str | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it becomes ``path``, whole.

    On an exception (KeyboardInterrupt included) the temporary folder is
    removed and ``path`` (new or existing) is left as it was. With ``force``
    an existing ``path`` is replaced as a whole (moved aside, then deleted).
    Checks as :func:`check_output` with ``folder=True``.

    Raises:
      OutputPathError: see :func:`check_output`; OutputExistsError also when
        ``path`` is filled while writing and ``force`` is not given.
    """
    path = check_output(path, inputs=tuple(inputs), force=force, folder=True, marker=marker)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=_parent(path)))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give what mkdir() would
        yield staging
        _publish_folder(staging, path, force, marker)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(target: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    The unchecked primitive (an existing ``target`` is replaced); commands
    use :func:`atomic_output_dir`.
    """
    target = Path(target)
    if not _parent(target).is_dir():
        raise OutputPathError(f"{target}: parent folder {_parent(target)} does not exist; create it first")
    with atomic_output_dir(target, force=True) as staging:
        yield staging
