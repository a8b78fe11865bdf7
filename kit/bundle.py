"""The participant bundle: `kit export` writes it, `kit join` checks and registers it.

A bundle is one ``.tar.gz`` (or ``.zip``) holding ``<competition>/public/`` (without anything
derived from test labels), ``posters/`` (every train, valid and test poster as the organiser
received it), a README and ``MANIFEST.sha256``. The same competition gives the same bytes.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from kit.competition import Competition
from kit.errors import KitError
from kit.files import atomic_path, file_digest, read_json, read_table, regular_file
from kit.workdir import Workdir, safe_name

PUBLIC_FILES = ("train.csv", "test.csv", "genres.txt", "sample_submission.csv",
                "normalization.json", "competition.json")
MANIFEST = "MANIFEST.sha256"
README = """# {name}: predict a film's genres from its poster

Multi-label classification: {genres} genres, {train} training and {valid} validation films
with labels (public/train.csv), {test} test films without (public/test.csv).

    kit join {name}.tar.gz                 # checks this bundle, stores the posters
    kit train --config baselines/lenet.toml && kit predict --run lenet
    export KIT_TOKEN=pgk_...               # the token your organiser gave you (or --token)
    kit submit submissions/lenet.csv --message "first try"
    kit submissions                        # your submissions and their public scores

Rules: {daily_limit} scored submissions per team per UTC day, {final_limit} final selections,
deadline {deadline}, ranked by {metric} on the public part of the test set until the close,
then by the private part (the final standing). Server: {server}.
A submission is public/sample_submission.csv's shape: id and one probability per genre.
"""


def _poster_sources(competition: Competition) -> dict[str, Path]:
    """Film id -> the original poster file, for every film of the competition's store."""
    store = competition.store_dir()
    dataset = competition.info().get("dataset")
    meta_path = store.parent / "prepare.json"
    if not meta_path.exists():
        raise KitError(f"the store of {competition.name} has no prepare.json beside it "
                       f"({meta_path}); export from the organiser's work folder")
    root = Path(read_json(meta_path)["source"])
    index = read_table(store / "index.csv", ["id", "source"])
    sources = {i: root / s for i, s in zip(index["id"], index["source"])}
    missing = [str(p) for p in list(sources.values())[:1000] if not p.is_file()]
    if missing and not root.is_absolute():      # an earlier kit recorded the path as typed
        raise KitError(f"kit prepare recorded the data folder of dataset {dataset!r} as {root}, "
                       "relative to the folder it ran in; run that kit prepare again (it stores "
                       "nothing anew) so that it records where the posters are")
    if missing:
        raise KitError(f"poster files of dataset {dataset!r} are gone, e.g. {missing[0]}; "
                       "the bundle ships the original posters")
    return sources


def bundle_members(competition: Competition, rules: dict, server: str | None
                   ) -> list[tuple[str, bytes | Path]]:
    """Every member of the bundle but the manifest (path inside the top folder, content or the
    file holding it), sorted."""
    public = competition.public
    info = competition.info()
    films = pd.concat([competition.train_table()["id"], pd.Series(competition.test_ids())])
    sources = _poster_sources(competition)
    members: dict[str, bytes | Path] = {}
    for name in PUBLIC_FILES[:-1]:
        members[f"public/{name}"] = (public / name).read_bytes()
    members["public/competition.json"] = (json_bytes({
        "name": competition.name, "image_size": info["image_size"], "rules": rules,
        "server": server}))
    for film_id in films:
        if film_id not in sources:
            raise KitError(f"film {film_id} of {competition.name} is not in its store")
        source = sources[film_id]
        members[f"posters/{film_id}{source.suffix.lower()}"] = source
    table = competition.train_table()
    members["README.md"] = README.format(
        name=competition.name, genres=len(competition.genres()),
        train=int((table["part"] == "train").sum()), valid=int((table["part"] == "valid").sum()),
        test=len(competition.test_ids()), server=server or "ask the organiser",
        **{**rules, "deadline": rules.get("deadline") or "none"}).encode()
    return sorted(members.items())


def _with_manifest(members: list[tuple[str, bytes | Path]]):
    """Each member's path and bytes, every file read once, then the manifest of their hashes:
    what is hashed is what is written."""
    lines = []
    for path, data in members:
        content = data if isinstance(data, bytes) else data.read_bytes()
        lines.append(f"{hashlib.sha256(content).hexdigest()}  {path}\n")
        yield path, content
    yield MANIFEST, "".join(lines).encode()


def json_bytes(data) -> bytes:
    """``data`` as indented JSON with sorted keys: the same data, the same bytes."""
    import json
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def export_bundle(workdir: Workdir, competition: str | None, out: str | None,
                  server: str | None) -> dict:
    """`kit export`: write the participant bundle (deterministic bytes)."""
    from eval.rules import read_rules
    found = Competition.find(workdir, competition)
    rules = read_rules(found.rules_path).as_dict()
    out = Path(out) if out else workdir.root / "bundles" / f"{found.name}.tar.gz"
    if not out.name.endswith((".tar.gz", ".tgz", ".zip")):
        raise KitError(f"--out {out} must end in .tar.gz, .tgz or .zip")
    members = bundle_members(found, rules, server)
    with atomic_path(out) as tmp:
        if out.name.endswith(".zip"):
            _write_zip(tmp, found.name, _with_manifest(members))
        else:
            _write_tar(tmp, found.name, _with_manifest(members))
    return {"competition": found.name, "bundle": str(out), "files": len(members) + 1,
            "bytes": out.stat().st_size,
            "sha256": file_digest(out)}


def _write_tar(path: Path, top: str, members) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def _write_zip(path: Path, top: str, members) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def extract_bundle(path: Path, destination: Path) -> tuple[str, dict[str, str]]:
    """Extract a bundle into ``destination/<top folder>``, refusing any member that could escape
    it; the top folder's name and the SHA-256 of every file written."""
    regular_file(path, "bundle", "; give the .tar.gz or .zip file the organiser published")
    tops, hashes = set(), {}
    try:
        entries = _zip_entries(path) if path.name.endswith(".zip") else _tar_entries(path)
        for name, kind, open_member in entries:
            pure = PurePosixPath(name)
            if name.startswith(("/", "\\")) or ".." in pure.parts or ":" in name \
                    or "\\" in name:
                raise KitError(f"bundle {path} has a member that escapes its folder: {name!r}")
            if kind not in ("file", "dir"):
                raise KitError(f"bundle {path} has a member that is a {kind}, not a file: "
                               f"{name!r}")
            if kind == "dir":
                continue
            if len(pure.parts) < 2:
                raise KitError(f"bundle {path} has a member outside its top folder: {name!r}")
            tops.add(safe_name(pure.parts[0]))
            if len(tops) > 1:
                raise KitError(f"bundle {path} must hold one top folder, found {sorted(tops)}")
            target = destination.joinpath(*pure.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            hashes[str(PurePosixPath(*pure.parts[1:]))] = _copy_hashed(open_member(), target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise KitError(f"bundle {path} is not a readable archive: {error}") from None
    if not tops:
        raise KitError(f"bundle {path} is empty")
    return tops.pop(), hashes


def _copy_hashed(source, target: Path) -> str:
    """Copy a member to ``target`` a megabyte at a time (a member that unpacks to gigabytes
    needs no more memory than a small one); its SHA-256."""
    digest = hashlib.sha256()
    with source, open(target, "wb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _tar_entries(path: Path):
    try:
        tar = tarfile.open(path, "r:*")
    except tarfile.ReadError:   # its message lists every compression it tried, a line each
        raise KitError(f"bundle {path} is not a readable archive: neither a tar archive "
                       "(plain, gzip, bzip2 or xz) nor a zip file") from None
    with tar:
        for member in tar:
            kind = ("file" if member.isfile() else "dir" if member.isdir() else
                    "link" if member.issym() or member.islnk() else "special file")
            yield member.name, kind, lambda m=member: tar.extractfile(m)


def _zip_entries(path: Path):
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            kind = "dir" if info.is_dir() else "link" if (mode & 0o170000) == 0o120000 \
                else "file"
            yield info.filename, kind, lambda i=info: archive.open(i)


def check_manifest(folder: Path, hashes: dict[str, str]) -> None:
    """Every file listed with its hash, and nothing else; KitError naming the first mismatch."""
    if MANIFEST not in hashes:
        raise KitError(f"the bundle has no {MANIFEST}")
    listed = {}
    for line in (folder / MANIFEST).read_text(encoding="utf-8", errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name, digest in listed.items():
        if name not in hashes:
            raise KitError(f"the bundle is missing {name}, listed in its manifest")
        if hashes[name] != digest:
            raise KitError(f"{name} in the bundle was changed: its SHA-256 differs from the "
                           "manifest's")
    extra = sorted(set(hashes) - set(listed) - {MANIFEST})
    if extra:
        raise KitError(f"the bundle holds files its manifest does not list, e.g. {extra[0]}")
