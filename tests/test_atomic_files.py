import os
import stat

import pytest

from ktp_tflite.train.atomic_files import OutputPathError, atomic_write_bytes, staged_directory


def test_atomic_write_gives_normal_permissions_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"123")
    assert target.read_bytes() == b"123"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    with pytest.raises(OutputPathError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "b.bin", b"")


def test_staged_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_directory(target) as staging:
            (staging / "half.txt").write_text("half")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with staged_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_files_written_together_appear_together_or_not_at_all(tmp_path):
    from ktp_tflite.train.atomic_files import atomic_write_files

    report, table = tmp_path / "report.json", tmp_path / "table.csv"
    atomic_write_files({report: b'{"a": 1}\n', table: b"x,y\r\n1,2\r\n"})
    assert report.read_bytes() == b'{"a": 1}\n' and table.read_bytes() == b"x,y\r\n1,2\r\n"
    umask = os.umask(0)
    os.umask(umask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (report, table)} == {0o666 & ~umask}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "table.csv"]

    # the second output cannot be written (a folder in the way): the first keeps its old content
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        atomic_write_files({report: b"new", tmp_path / "folder": b"x"})
    assert report.read_bytes() == b'{"a": 1}\n'
    with pytest.raises(OutputPathError, match="does not exist"):
        atomic_write_files({report: b"new", tmp_path / "missing" / "t.csv": b"x"})
    assert report.read_bytes() == b'{"a": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "report.json", "table.csv"]


def test_an_interrupt_while_writing_the_second_file_changes_neither(tmp_path):
    from collections.abc import Mapping

    from ktp_tflite.train.atomic_files import atomic_write_files

    class Interrupted(Mapping):
        """The second file's content is never produced: Ctrl-C arrives while it is computed."""

        def __init__(self, first):
            self.first = first

        def __getitem__(self, key):
            if key == self.first:
                return b"new first"
            raise KeyboardInterrupt

        def __iter__(self):
            return iter((self.first, tmp_path / "second.csv"))

        def __len__(self):
            return 2

    first = tmp_path / "first.json"
    first.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        atomic_write_files(Interrupted(first))
    assert first.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.json"]  # no temporary left
