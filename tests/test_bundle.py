"""The participant bundle: no test label leaves the organiser, and `kit join` trusts nothing."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from eval.answers import load_answers
from kit.competition import Competition
from kit.workdir import Workdir
from tests.conftest import TEST_SIZE, run_cli


@pytest.fixture
def bundle(organiser, capsys):
    code, data, err = run_cli(capsys, "export", "--workdir", str(organiser), "--server",
                              "http://127.0.0.1:9")
    assert code == 0, err
    return organiser, data


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_bundle_holds_no_test_label_and_no_organiser_path(bundle, synthetic_dir):
    organiser, data = bundle
    files = members(data["bundle"])
    competition = Competition.find(Workdir(organiser))
    key = load_answers(competition.answers)
    names = {name.split("/", 1)[1] for name in files}
    assert {n for n in names if not n.startswith("posters/")} == {
        "README.md", "MANIFEST.sha256", "public/train.csv", "public/test.csv",
        "public/genres.txt", "public/sample_submission.csv", "public/normalization.json",
        "public/competition.json"}
    assert len([n for n in names if n.startswith("posters/")]) == 240
    test_ids = set(key.ids)
    sample = pd.read_csv(io.BytesIO(files[f"{competition.name}/public/sample_submission.csv"]),
                         dtype={"id": str})
    assert set(sample["id"]) == test_ids
    assert len(sample.drop(columns="id").drop_duplicates()) == 1     # the prior, the same for all
    train = pd.read_csv(io.BytesIO(files[f"{competition.name}/public/train.csv"]), dtype=str)
    assert not set(train["id"]) & test_ids
    truth = dict(zip(key.ids, pd.read_csv(competition.answers, dtype=str)["genres"]))
    for name, content in files.items():
        if name.endswith((".jpg", ".png")):
            continue
        text = content.decode()
        for line in text.splitlines():
            cells = set(line.replace(",", " ").split())
            for film in cells & test_ids:
                assert truth[film] not in line, f"{name} holds the label of test film {film}"
        for secret in (str(organiser), str(synthetic_dir), "private/", "answers.csv",
                       "per_genre_counts"):
            assert secret not in text, f"{name} mentions {secret}"


def test_same_competition_same_bytes(bundle, capsys, tmp_path):
    organiser, first = bundle
    code, second, _ = run_cli(capsys, "export", "--workdir", str(organiser), "--server",
                              "http://127.0.0.1:9", "--out", str(tmp_path / "again.tar.gz"))
    assert code == 0 and second["sha256"] == first["sha256"]
    zips = [run_cli(capsys, "export", "--workdir", str(organiser), "--out",
                    str(tmp_path / f"b{i}.zip"))[1]["sha256"] for i in range(2)]
    assert zips[0] == zips[1]


def test_export_finds_posters_prepared_from_a_relative_path(synthetic_dir, capsys, tmp_path,
                                                            monkeypatch):
    """A data folder named relative to where kit prepare ran is found by an export run
    elsewhere (the organiser prepares in one shell and exports from another)."""
    work = tmp_path / "work"
    monkeypatch.chdir(synthetic_dir.parent)
    assert run_cli(capsys, "prepare", synthetic_dir.name, "--workdir", str(work), "--size",
                   TEST_SIZE, "--shard-size", "64")[0] == 0
    assert run_cli(capsys, "split", "--workdir", str(work), "--min-support", "5")[0] == 0
    monkeypatch.chdir(tmp_path)
    code, data, err = run_cli(capsys, "export", "--workdir", str(work))
    assert code == 0, err
    assert len([n for n in members(data["bundle"]) if "/posters/" in n]) == 240
    meta = work / "datasets" / synthetic_dir.name / "prepare.json"  # as an earlier kit wrote it
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "source": synthetic_dir.name}))
    code, _, err = run_cli(capsys, "export", "--workdir", str(work))
    assert code == 2 and "relative to the folder it ran in; run that kit prepare again" in err


def rewrite(source, target, change):
    """Copy a bundle member by member, letting ``change(info, data)`` alter or add members."""
    with tarfile.open(source) as old, tarfile.open(target, "w:gz") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None
            for info, content in change(member, data):
                new.addfile(info, io.BytesIO(content) if content is not None else None)
    return target


def test_join_refuses_changed_missing_and_escaping_members(bundle, capsys, tmp_path):
    _, data = bundle

    def changed(member, content):
        if member.name.endswith("public/train.csv"):
            content = content.replace(b"train", b"valid", 1)
            member.size = len(content)
        yield member, content

    def dropped(member, content):
        if not member.name.endswith("public/genres.txt"):
            yield member, content

    def escaping(name):
        def change(member, content):
            yield member, content
            if member.name.endswith("README.md"):
                extra = tarfile.TarInfo(name)
                extra.size = 2
                yield extra, b"x\n"
        return change

    def linked(member, content):
        yield member, content
        if member.name.endswith("README.md"):
            link = tarfile.TarInfo(member.name.replace("README.md", "posters/evil.jpg"))
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            yield link, None

    cases = {"changed": (changed, "public/train.csv in the bundle was changed"),
             "dropped": (dropped, "missing public/genres.txt"),
             "dotdot": (escaping("../../outside.txt"), "escapes its folder"),
             "absolute": (escaping("/tmp/outside.txt"), "escapes its folder"),
             "link": (linked, "is a link")}
    for case, (change, message) in cases.items():
        target = rewrite(data["bundle"], tmp_path / f"{case}.tar.gz", change)
        code, _, err = run_cli(capsys, "join", str(target), "--workdir", str(tmp_path / case))
        assert code == 2 and message in " ".join(err.split()), (case, err)
        assert not (tmp_path / case).exists(), case     # once an empty work/bundles/ stayed
        assert not (tmp_path / "outside.txt").exists() and not (tmp_path.parent /
                                                                 "outside.txt").exists()
    code, _, err = run_cli(capsys, "join", str(tmp_path / "nope.tar.gz"), "--workdir",
                           str(tmp_path / "x"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "text.tar.gz").write_text("not an archive\n")
    (tmp_path / "folder.tar.gz").mkdir()
    for name, message in (("text.tar.gz", "neither a tar archive (plain, gzip, bzip2 or xz) "
                                          "nor a zip file"), ("folder.tar.gz", "is a folder")):
        code, _, err = run_cli(capsys, "join", str(tmp_path / name), "--workdir",
                               str(tmp_path / "x"))
        assert code == 2 and message in " ".join(err.split()), err
        assert "method gz" not in err         # tarfile's attempts, one line each
    assert not (tmp_path / "x").exists()


def resealed(source, target, edits: dict[str, bytes | None]):
    """The bundle with the members under ``edits`` (paths inside its folder) replaced or
    dropped, and its manifest written anew to match: damage no hash check can see."""
    files = members(source)
    top = next(iter(files)).split("/")[0]
    for name, content in edits.items():
        files.pop(f"{top}/{name}")
        if content is not None:
            files[f"{top}/{name}"] = content
    files.pop(f"{top}/MANIFEST.sha256")
    files[f"{top}/MANIFEST.sha256"] = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name.split('/', 1)[1]}\n"
        for name, content in sorted(files.items())).encode()
    with tarfile.open(target, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return target


def test_join_refuses_public_files_a_resealed_manifest_hides(bundle, capsys, tmp_path):
    import json
    _, data = bundle
    files = members(data["bundle"])
    top = next(iter(files)).split("/")[0]
    info = json.loads(files[f"{top}/public/competition.json"])
    poster = next(name for name in files if "/posters/" in name).split("/", 1)[1]

    def competition(**changes):
        return {"public/competition.json": json.dumps({**info, **changes}).encode()}

    cases = {   # each was a traceback, a competition joined without genres, or a later crash
        "list": ({"public/competition.json": b"[1, 2]"}, "is not a JSON object"),
        "huge": (competition(image_size=[100000, 100000]), "image_size must be [height, width]"),
        "url": (competition(server="http://[::1"), "the bundle's server URL"),
        "rules": (competition(rules={"daily_limit": "x"}), "rule daily_limit"),
        "name": (competition(name="../../evil"), "names the competition '../../evil'"),
        "genres": ({"public/genres.txt": b""}, "must name each genre once"),
        "columns": ({"public/train.csv": b"x,y\n1,2\n"}, "public/train.csv has no column id"),
        "stats": ({"public/normalization.json": b'{"mean": [0, 0], "std": [1, 1, 0]}'},
                  "mean must be 3 finite numbers"),
        "sample": ({"public/sample_submission.csv": None},
                   "lacks public/sample_submission.csv"),
        "poster": ({poster: b"not an image"}, "could not be stored"),
    }
    work = tmp_path / "work"
    for case, (edits, message) in cases.items():
        broken = resealed(data["bundle"], tmp_path / f"{case}.tar.gz", edits)
        code, _, err = run_cli(capsys, "join", str(broken), "--workdir", str(work))
        assert code == 2 and message in " ".join(err.split()), (case, err)
        assert "Traceback" not in err and ".joining-" not in err, err
        assert not (work / "bundles").exists(), case    # so the real bundle joins after it
    code, joined, err = run_cli(capsys, "join", str(data["bundle"]), "--workdir", str(work))
    assert code == 0, err


class Zeros(io.RawIOBase):
    """``size`` zero bytes, made as they are read."""
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def test_join_streams_a_member_that_unpacks_to_hundreds_of_megabytes(bundle, tmp_path):
    _, data = bundle
    huge = 400 << 20

    def padded(member, content):
        yield member, content
        if member.name.endswith("README.md"):
            extra = tarfile.TarInfo(member.name.replace("README.md", "posters/huge.bin"))
            extra.size = huge
            yield extra, Zeros(huge)

    with tarfile.open(data["bundle"]) as old, \
            tarfile.open(tmp_path / "padded.tar.gz", "w:gz", compresslevel=1) as new:
        for member in old:
            content = old.extractfile(member).read() if member.isfile() else None
            for info, body in padded(member, content):
                new.addfile(info, io.BufferedReader(body) if isinstance(body, Zeros)
                            else io.BytesIO(body) if body is not None else None)
    # VmHWM: this process's own peak (getrusage's ru_maxrss carries over the parent's from the
    # fork, so it read the test runner's 2 GB)
    probe = ("import re, sys; from kit.cli import main; code = main(sys.argv[1:]); "
             "status = open('/proc/self/status').read(); "
             "print(code, int(re.search(r'VmHWM:\\s+(\\d+)', status)[1]) // 1024)")
    result = subprocess.run([sys.executable, "-c", probe, "join", str(tmp_path / "padded.tar.gz"),
                             "--workdir", str(tmp_path / "joined")],
                            capture_output=True, text=True)
    code, peak_mb = map(int, result.stdout.split())
    assert code == 2 and "does not list, e.g. posters/huge.bin" in result.stderr, result.stderr
    assert peak_mb < 300        # read whole, the 400 MB member alone took more
    assert not (tmp_path / "joined").exists()                      # nothing left on disk


def test_join_registers_a_competition_without_answer_key(bundle, capsys, tmp_path):
    organiser, data = bundle
    participant = tmp_path / "participant"
    code, joined, err = run_cli(capsys, "join", data["bundle"], "--workdir", str(participant),
                                "--scheduler", "inline")
    assert code == 0, err
    competition = Competition.find(Workdir(participant))
    original = Competition.find(Workdir(organiser))
    assert competition.name == original.name and joined["posters"] == 240
    assert not competition.answers.exists()
    assert competition.test_ids() == original.test_ids()
    store, source = competition.store(), original.store()
    for film in competition.test_ids()[:5]:
        assert (store[int(store.positions([film])[0])] ==
                source[int(source.positions([film])[0])]).all()
    assert competition.info()["server"] == "http://127.0.0.1:9"
    again = run_cli(capsys, "join", data["bundle"], "--workdir", str(participant))
    assert again[0] == 0                                           # joining twice is harmless
    code, _, err = run_cli(capsys, "join", data["bundle"], "--workdir", str(organiser))
    assert code == 2 and "answer key" in err
    manifest = (participant / "bundles" / competition.name / "MANIFEST.sha256").read_text()
    readme = (participant / "bundles" / competition.name / "README.md").read_bytes()
    assert f"{hashlib.sha256(readme).hexdigest()}  README.md" in manifest


def test_one_join_at_a_time_into_a_work_folder(bundle, capsys, tmp_path):
    """Two joins of one bundle into one work folder at once both stored its posters into the
    same store; the second names the first and leaves nothing, and joins once it has gone."""
    from kit.files import exclusive_lock
    _, data = bundle
    participant = tmp_path / "participant"
    name = Competition.find(Workdir(bundle[0])).name
    with exclusive_lock(participant / "datasets" / name / ".lock", f"kit join of {name!r}"):
        code, _, err = run_cli(capsys, "join", data["bundle"], "--workdir", str(participant))
        assert code == 2 and f"is busy: kit join of {name!r}" in " ".join(err.split()), err
        assert sorted(p.name for p in participant.iterdir()) == ["datasets"]
    code, joined, err = run_cli(capsys, "join", data["bundle"], "--workdir", str(participant))
    assert code == 0 and joined["posters"] == 240, err


def test_compare_in_a_joined_work_folder_scores_the_valid_part(bundle, capsys, tmp_path):
    from kit.compare import compare
    from kit.train.config import TrainConfig
    _, data = bundle
    participant = tmp_path / "participant"
    assert run_cli(capsys, "join", data["bundle"], "--workdir", str(participant))[0] == 0
    result = compare(TrainConfig(model="lenet", epochs=1, batch_size=32), Workdir(participant),
                     ["none", "class-weight"], submissions=str(tmp_path / "subs"), resamples=20,
                     seeds=1)
    assert result["scored_on"] == "valid"
    report = open(result["report"]).read()
    assert "compared on the valid part" in report and "optimistic" in report
    valid = Competition.find(Workdir(participant)).train_table().query("part == 'valid'")
    written = pd.read_csv(tmp_path / "subs" / "compare" / "none@tuned.csv", dtype={"id": str})
    assert sorted(written["id"]) == sorted(valid["id"])
