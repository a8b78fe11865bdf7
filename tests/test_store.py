import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kit.errors import KitError
from kit.imaging import decode_poster
from kit.ingest import build_catalogue, find_source
from kit.scheduler import run_jobs
from kit.shards import build_shard
from kit.store import Store, build_store
from tests.conftest import jpeg_bytes


def catalogue(root):
    return build_catalogue(find_source(root)).films


def test_store_holds_exactly_the_decoded_posters(synthetic_dir, tmp_path):
    films = catalogue(synthetic_dir)
    result = build_store(films, synthetic_dir, tmp_path / "store", size=(69, 46), shard_size=50,
                         workers=2)
    assert result["stored"] == len(films) == 240 and result["failed"] == {}
    store = Store(tmp_path / "store")
    assert list(store.index["id"]) == list(films["id"])
    for position in [0, 57, 239]:
        source = synthetic_dir / films["poster"][position]
        expected = decode_poster(source.read_bytes(), size=(69, 46))
        np.testing.assert_array_equal(store[position], expected)


def test_rerun_skips_unchanged_and_restores_changed_posters(letterboxd_dir, tmp_path):
    films = catalogue(letterboxd_dir)
    build_store(films, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    again = build_store(films, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    assert again["skipped_unchanged"] == 3 and again["newly_stored"] == 0
    (letterboxd_dir / "posters" / "1000001.jpg").write_bytes(jpeg_bytes((0, 0, 250)))
    changed = build_store(films, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    assert changed["newly_stored"] == 1
    store = Store(tmp_path)
    blue = store[int(store.positions(["1000001"])[0])]
    assert blue[2].mean() > 200 and blue[0].mean() < 50


@pytest.mark.parametrize("damage", ["cut short", "emptied", "removed"])
def test_a_shard_array_lost_to_a_power_cut_is_named_and_stored_again(synthetic_dir, tmp_path,
                                                                     damage):
    """Shard arrays are not fsynced (the store is rebuilt from the posters): one that a power
    loss cut short is an error naming it, and the next run stores its posters again."""
    films = catalogue(synthetic_dir)
    build_store(films, synthetic_dir, tmp_path, size=(30, 20), shard_size=100,
                scheduler="inline")
    before = Store(tmp_path)
    expected = np.stack([before[i] for i in range(len(before))])
    array = tmp_path / "shard-000001.npy"
    if damage == "removed":
        array.unlink()
    else:
        os.truncate(array, array.stat().st_size // 2 if damage == "cut short" else 0)
    with pytest.raises(KitError, match="shard-000001.npy is missing or cut short"):
        Store(tmp_path)[150]
    again = build_store(films, synthetic_dir, tmp_path, size=(30, 20), shard_size=100,
                        scheduler="inline")
    assert again["newly_stored"] == 100 and again["skipped_unchanged"] == 140
    after = Store(tmp_path)
    order = after.positions(before.index["id"])
    np.testing.assert_array_equal(np.stack([after[int(i)] for i in order]), expected)


def test_interrupted_run_resumes_to_the_same_store(synthetic_dir, tmp_path):
    films = catalogue(synthetic_dir)
    build_store(films, synthetic_dir, tmp_path / "whole", size=(30, 20), shard_size=40,
                scheduler="processes")

    def dies_after_two_shards(jobs):
        for number, sidecar in enumerate(run_jobs(build_shard, jobs, "inline")):
            yield sidecar
            if number == 1:
                raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        build_store(films, synthetic_dir, tmp_path / "resumed", size=(30, 20), shard_size=40,
                    runner=dies_after_two_shards)
    # A shard caught half-written: an array without its sidecar, and a stray temporary file.
    (tmp_path / "resumed" / "shard-000099.npy").write_bytes(b"garbage")
    (tmp_path / "resumed" / ".shard-000100.npy.123.tmp").write_bytes(b"garbage")
    result = build_store(films, synthetic_dir, tmp_path / "resumed", size=(30, 20),
                         shard_size=40, scheduler="inline")
    assert result["skipped_unchanged"] == 80 and result["newly_stored"] == 160
    assert not (tmp_path / "resumed" / "shard-000099.npy").exists()
    whole, resumed = Store(tmp_path / "whole"), Store(tmp_path / "resumed")
    assert list(whole.index["checksum"]) == list(resumed.index["checksum"])
    for position in range(len(whole)):
        np.testing.assert_array_equal(whole[position], resumed[position])


def test_bad_files_are_listed_with_their_reason_and_good_ones_kept(letterboxd_dir, tmp_path):
    posters = letterboxd_dir / "posters"
    (posters / "tt0086567.jpg").write_bytes(b"")
    (posters / "tt0086383.jpg").write_bytes(b"<html>not an image</html>")
    good = catalogue(letterboxd_dir)
    result = build_store(good, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    assert result["stored"] == 1
    assert {r: [f["id"] for f in v] for r, v in result["failed"].items()} == {
        "empty": ["tt0086567"], "not-an-image": ["tt0086383"]}


def test_files_that_are_not_regular_are_listed_and_never_block(letterboxd_dir, tmp_path):
    # A FIFO blocks whoever opens it for reading until a writer comes: it used to hang prepare
    # forever, with the good posters of its shard never stored. A folder is no poster either.
    posters = letterboxd_dir / "posters"
    (posters / "1000001.jpg").unlink()
    os.mkfifo(posters / "1000001.jpg")
    (posters / "tt0086383.jpg").unlink()
    (posters / "tt0086383.jpg").mkdir()
    done = subprocess.run([sys.executable, "-m", "kit", "prepare", str(letterboxd_dir),
                           "--workdir", str(tmp_path), "--name", "d", "--size", "20x10",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["dropped"]["not-a-file"] == 2
    assert list(Store(tmp_path / "datasets" / "d" / "store-20x10").index["id"]) == ["tt0086567"]


def test_a_failed_poster_is_tried_again(letterboxd_dir, tmp_path):
    (letterboxd_dir / "posters" / "1000001.jpg").write_bytes(jpeg_bytes(size=(300, 200)))
    films = catalogue(letterboxd_dir)
    first = build_store(films, letterboxd_dir, tmp_path, size=(20, 10), max_pixels=10_000,
                        scheduler="inline")
    assert [f["id"] for f in first["failed"]["oversized"]] == ["1000001"]
    again = build_store(films, letterboxd_dir, tmp_path, size=(20, 10), max_pixels=100_000,
                        scheduler="inline")
    assert again["failed"] == {} and again["stored"] == 3 and again["newly_stored"] == 1


def test_a_poster_replaced_with_the_same_size_and_mtime_is_stored_again(letterboxd_dir,
                                                                         tmp_path):
    poster = letterboxd_dir / "posters" / "1000001.jpg"
    poster.write_bytes(jpeg_bytes((250, 0, 0), fmt="BMP"))        # BMP: size fixed by the shape
    films = catalogue(letterboxd_dir)
    build_store(films, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    stat = poster.stat()
    poster.write_bytes(jpeg_bytes((0, 0, 250), fmt="BMP"))
    os.utime(poster, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert poster.stat().st_size == stat.st_size
    again = build_store(films, letterboxd_dir, tmp_path, size=(20, 10), scheduler="inline")
    assert again["newly_stored"] == 1
    store = Store(tmp_path)
    assert store[int(store.positions(["1000001"])[0])][2].mean() > 200


def test_a_shard_is_one_npy_and_one_sidecar(letterboxd_dir, tmp_path):
    from kit.shards import ShardJob
    items = tuple((i, str(letterboxd_dir / "posters" / f"{i}.jpg"), f"posters/{i}.jpg")
                  for i in ["1000001", "tt0086383"])
    out = tmp_path / "store"
    out.mkdir()
    sidecar = build_shard(ShardJob(str(out), 7, items, (20, 10), 10**6))
    assert [r["row"] for r in sidecar["rows"]] == [0, 1]
    assert np.load(out / "shard-000007.npy").shape == (2, 3, 20, 10)
    assert sorted(p.name for p in out.iterdir()) == ["shard-000007.json", "shard-000007.npy"]
