"""A poster folder assembled by an attacker and an unlucky user: ingest finishes, stores every
good poster and lists every bad one with its reason."""
import io
import json
import os
import struct
import zlib

import numpy as np
import pandas as pd
from PIL import Image

from kit.cli import main


def image_bytes(mode, size, colour, fmt):
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_claiming(width, height):
    """A real PNG file whose header declares ``width`` x ``height`` pixels (a bomb's shape)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_hostile_poster_folder(tmp_path, capsys, tmp_path_factory):
    posters = tmp_path / "posters"
    posters.mkdir()
    good = {
        "rgb": image_bytes("RGB", (60, 90), (200, 10, 10), "JPEG"),
        "png-named-jpg": image_bytes("RGB", (60, 90), (10, 200, 10), "PNG"),
        "webp-named-jpg": image_bytes("RGB", (60, 90), (10, 10, 200), "WEBP"),
        "cmyk": image_bytes("CMYK", (60, 90), (0, 255, 255, 0), "JPEG"),
        "grey16": image_bytes("I;16", (60, 90), 30000, "PNG"),
        "tt0000001": image_bytes("RGB", (60, 90), (90, 90, 90), "JPEG"),
    }
    noise = image_bytes("RGB", (200, 300), (1, 2, 3), "JPEG")
    bad = {"truncated": noise[: len(noise) // 3], "zero": b"",
           "bomb": png_header_claiming(20_000, 20_000), "text": b"hello, not a poster"}
    for name, data in {**good, **bad}.items():
        (posters / f"{name}.jpg").write_bytes(data)
    (posters / "a-directory.jpg").mkdir()                       # not a regular file
    outside = tmp_path_factory.mktemp("elsewhere") / "x.jpg"
    outside.write_bytes(good["rgb"])
    os.symlink(outside, posters / "escapes.jpg")
    names = [*good, *bad, "a-directory", "escapes"]
    rows = [(n, 'Crime, "Noir"') for n in names] + [(n, "Ciné-Drame") for n in names]
    rows += [("rgb", 'Crime, "Noir"'), ("../rgb", "Drama"), ("posters/rgb", "Drama"),
             ("no-poster", "Drama")]
    pd.DataFrame(rows, columns=["id", "genre"]).to_csv(tmp_path / "genres.csv", index=False)

    code = main(["prepare", str(tmp_path), "--workdir", str(tmp_path / "work"), "--size",
                 "30x20", "--scheduler", "inline", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert summary["stored"] == len(good)
    report = json.loads((tmp_path / "work" / "datasets" / tmp_path.name / "prepare.json")
                        .read_text())
    dropped = report["dropped_ids"]
    assert dropped["truncated"] == ["truncated"] and dropped["empty"] == ["zero"]
    assert dropped["oversized"] == ["bomb"] and dropped["not-an-image"] == ["text"]
    assert dropped["not-a-file"] == ["a-directory"]
    assert dropped["poster-outside-folder"] == ["escapes"]
    assert sorted(dropped["unsafe-id"]) == ["../rgb", "posters/rgb"]
    assert dropped["no-poster"] == ["no-poster"]
    assert report["notes"]["duplicate label rows"] == 1
    films = pd.read_csv(tmp_path / "work" / "datasets" / tmp_path.name / "films.csv", dtype=str)
    assert set(films.loc[films.id == "rgb", "genres"]) == {'Ciné-Drame|Crime, "Noir"'}
    index = pd.read_csv(tmp_path / "work" / "datasets" / tmp_path.name / "store-30x20" /
                        "index.csv", dtype=str)
    assert sorted(index["id"]) == sorted(good)
    store_dir = tmp_path / "work" / "datasets" / tmp_path.name / "store-30x20"
    row = index.set_index("id").loc["webp-named-jpg"]
    pixels = np.load(store_dir / f"shard-{int(row['shard']):06d}.npy")[int(row["row"])]
    assert pixels[2].mean() > 150 and pixels[0].mean() < 60   # the WebP's blue survived


def test_odd_genre_names_survive_split_and_scoring(tmp_path, capsys):
    from kit.synth import synthesize
    data = tmp_path / "data"
    synthesize(data, 60, seed=2, workers=1)
    labels = pd.read_csv(data / "genres.csv")
    labels["genre"] = labels["genre"].replace({"Drama": 'Drame, "vrai"', "Comedy": "Comédie"})
    labels.to_csv(data / "genres.csv", index=False)
    work = str(tmp_path / "work")
    assert main(["prepare", str(data), "--workdir", work, "--size", "30x20",
                 "--scheduler", "inline"]) == 0
    assert main(["split", "--workdir", work, "--min-support", "3"]) == 0
    from eval.cli import main as eval_main
    from kit.competition import Competition
    from kit.workdir import Workdir
    competition = Competition.find(Workdir(work))
    assert 'Drame, "vrai"' in competition.genres() and "Comédie" in competition.genres()
    capsys.readouterr()
    assert eval_main(["score", str(competition.public / "sample_submission.csv"), "--workdir",
                      work, "--json", "--bootstrap", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 'Drame, "vrai"' in [g["genre"] for g in result["public"]["per_genre"]]
