"""Atomic writes leave no temporaries behind, even after a writer was killed; locks leave no
empty folder behind."""
import os
import subprocess
import sys

import pytest

from kit.errors import KitError
from kit.files import atomic_path, exclusive_lock, write_text


def test_failed_block_keeps_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


def test_commit_removes_temporaries_of_killed_writers_only(tmp_path):
    target = tmp_path / "plot.png"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys\n"
        "from kit.files import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        "    os._exit(9)\n")])
    assert killed.returncode == 9
    assert len(list(tmp_path.glob(".plot.png.*.tmp"))) == 1
    with atomic_path(target) as tmp:
        live = list(tmp_path.glob(".plot.png.*.tmp"))
        assert len(live) == 2 and tmp in live          # our own temporary is not touched early
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not list(tmp_path.glob(".*.tmp"))


def test_temporaries_of_a_live_writer_survive_another_commit(tmp_path):
    target = tmp_path / "a.json"
    with atomic_path(target) as outer:
        outer.write_text("1")
        write_text(target, "2")                          # same process, still alive
        assert outer.exists()
    assert target.read_text() == "1" and os.listdir(tmp_path) == ["a.json"]


def test_a_lock_folder_left_empty_is_removed_and_others_kept(tmp_path):
    with exclusive_lock(tmp_path / "refused" / ".lock", "a command refused at once"):
        pass
    assert not (tmp_path / "refused").exists()          # made for the lock, nothing written
    with exclusive_lock(tmp_path / "worked" / ".lock", "a command that wrote"):
        (tmp_path / "worked" / "result.json").write_text("{}")
    assert (tmp_path / "worked" / "result.json").exists()
    (tmp_path / "existed").mkdir()
    with exclusive_lock(tmp_path / "existed" / ".lock", "a command in a folder that was there"):
        pass
    assert (tmp_path / "existed").is_dir()
    with pytest.raises(KitError, match="is busy: first .* holds it"):
        with exclusive_lock(tmp_path / "held" / ".lock", "first"):
            with exclusive_lock(tmp_path / "held" / ".lock", "second"):
                pass
    assert not (tmp_path / "held").exists()
