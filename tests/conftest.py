"""Shared fixtures: tiny generated data sets, built once per test session."""
from __future__ import annotations

import io
import json

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

from kit.synth import synthesize

pytest_plugins = ["tests.servers"]


# Fuzzing budgets: thousands of generated files per CI run, far more under `make fuzz`.
for _name, _examples in (("ci", 1500), ("fuzz", 20000)):
    settings.register_profile(_name, max_examples=_examples, deadline=None,
                              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def jpeg_bytes(colour=(200, 30, 30), size=(46, 69), mode="RGB", fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def run_cli(capsys, *argv) -> tuple[int, dict | None, str]:
    """Run `kit` in-process with --json; return exit code, parsed JSON (if any) and stderr."""
    from kit.cli import main
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out) if captured.out.strip() else None
    return code, data, captured.err


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A 240-film synthetic data set in the Letterboxd layout."""
    out = tmp_path_factory.mktemp("synthetic")
    synthesize(out, 240, seed=3, workers=2)
    return out


@pytest.fixture
def letterboxd_dir(tmp_path):
    """A hand-made Letterboxd-layout folder with string ids, a missing poster and an orphan."""
    posters = tmp_path / "posters"
    posters.mkdir()
    rows = [("tt0086567", "Sci-Fi"), ("tt0086567", "Thriller"), ("tt0086383", "Action"),
            ("1000001", "Drama"), ("1000002", "Drama"), ("1000002", "Comedy")]
    pd.DataFrame(rows, columns=["id", "genre"]).to_csv(tmp_path / "genres.csv", index=False)
    for film_id in ["tt0086567", "tt0086383", "1000001", "9999999"]:  # 1000002 has no poster
        (posters / f"{film_id}.jpg").write_bytes(jpeg_bytes())
    return tmp_path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The smallest size that still fits LeNet's four conv/pool blocks, a third of 345x230.
TEST_SIZE = "115x77"


@pytest.fixture(scope="session")
def workdir(synthetic_dir, tmp_path_factory):
    """A work folder with the synthetic data set prepared at the test size and one competition."""
    from kit.cli import main
    root = tmp_path_factory.mktemp("work")
    assert main(["prepare", str(synthetic_dir), "--workdir", str(root), "--size", TEST_SIZE,
                 "--name", "synth", "--shard-size", "64"]) == 0
    assert main(["split", "--workdir", str(root), "--min-support", "5", "--seed", "1"]) == 0
    return root


@pytest.fixture(scope="session")
def competition(workdir):
    from kit.competition import Competition
    from kit.workdir import Workdir
    return Competition.find(Workdir(workdir))
