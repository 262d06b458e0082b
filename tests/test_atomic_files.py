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
