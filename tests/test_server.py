"""The grading server as participants meet it: a real uvicorn process, a real database
(SQLite and PostgreSQL), real CSV files."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pandas as pd
import pytest

from eval.answers import load_answers
from eval.rules import read_rules, write_rules
from eval.cli import main as eval_main
from kit.competition import Competition
from kit.workdir import Workdir


def add(organiser, db_url, name, team=None, *extra) -> str:
    """`python -m eval participants add`: the token, printed once."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert eval_main(["participants", "add", name, "--workdir", str(organiser), "--db",
                          db_url, "--json", *(["--team", team] if team else []), *extra]) == 0
    return json.loads(out.getvalue())["token"]


def rules(organiser, *options):
    assert eval_main(["rules", "--workdir", str(organiser), *options]) == 0


def competition_of(organiser) -> Competition:
    return Competition.find(Workdir(organiser))


def write_submission(organiser, path, flip=0, seed=0):
    """A probability CSV: the truth with ``flip`` of its cells inverted, noised by ``seed``."""
    import numpy as np
    key = load_answers(competition_of(organiser).answers)
    rng = np.random.default_rng(seed)
    values = key.labels.astype(float)
    cells = rng.random(values.shape) < flip
    values[cells] = 1 - values[cells]
    values = np.clip(values * 0.8 + rng.random(values.shape) * 0.2, 0, 1)
    frame = pd.DataFrame(values, columns=key.genres)
    frame.insert(0, "id", key.ids)
    frame.to_csv(path, index=False)
    return path


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def post(server, token, path, message="", name=None):
    with open(path, "rb") as handle:
        return httpx.post(f"{server.url}/api/submissions",
                          headers={"Authorization": f"Bearer {token}"} if token else {},
                          files={"file": (name or path.name, handle, "text/csv")},
                          data={"message": message}, timeout=120)


def test_public_score_equals_eval_score_and_private_stays_hidden(organiser, serve, database_url,
                                                                  tmp_path):
    server = serve()
    token = add(organiser, database_url, "alice", "red")
    path = write_submission(organiser, tmp_path / "mine.csv", flip=0.2)
    response = post(server, token, path, "first")
    assert response.status_code == 201, response.text
    body = response.json()
    key = load_answers(competition_of(organiser).answers)
    from eval.scoring import score_submission
    local = score_submission(path, key, reveal_private=True)
    assert body["score"] == pytest.approx(local["public"]["f1_macro"], abs=1e-12)
    assert body["interval"] == pytest.approx(local["public"]["f1_macro_interval"])
    assert body["rank"] == 1 and body["remaining_today"] == 4
    secrets = {repr(v)[:12] for k, v in local["private"].items()
               if isinstance(v, float) and len(repr(v)) > 8}
    secrets |= {repr(v)[:12] for v in local["private"]["f1_macro_interval"]}
    session = httpx.Client(base_url=server.url)
    assert session.post("/login", data={"token": token}).status_code in (200, 303)
    bodies = [session.get(url).text for url in ("/", "/leaderboard", "/me", "/login")]
    bodies += [httpx.get(server.url + url, headers={"Authorization": f"Bearer {token}"}).text
               for url in ("/api/leaderboard", "/api/submissions", f"/api/submissions/{body['id']}",
                           "/api/me", "/api/rules")]
    bodies += [response.text, server.log.read_text()]
    for text in bodies:
        assert not [s for s in secrets if s in text], "a private number leaked"
        assert "private_score" not in text


def test_daily_limit_is_exact_under_concurrency(organiser, serve, database_url, tmp_path):
    rules(organiser, "--daily-limit", "5")
    server = serve("--queue", "30")
    token = add(organiser, database_url, "bob", "blue")
    paths = [write_submission(organiser, tmp_path / f"s{i}.csv", 0.1, seed=i) for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(lambda p: post(server, token, p).status_code, paths))
    assert codes == [201] * 5 + [429] * 15
    listing = httpx.get(f"{server.url}/api/submissions",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert [s["status"] for s in listing["submissions"]] == ["scored"] * 5
    assert listing["remaining_today"] == 0
    refused = post(server, token, paths[0])
    assert refused.status_code == 429 and "resets at" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) > 0


def test_tokens_teams_and_ids(organiser, serve, database_url, tmp_path):
    server = serve()
    alice = add(organiser, database_url, "alice", "red")
    eve = add(organiser, database_url, "eve", "black")
    path = write_submission(organiser, tmp_path / "a.csv", 0.1)
    mine = post(server, alice, path).json()["id"]
    assert post(server, None, path).status_code == 401
    assert post(server, "not-a-token", path).status_code == 401
    assert httpx.get(f"{server.url}/api/me?token={alice}").status_code == 400
    other = httpx.get(f"{server.url}/api/submissions/{mine}",
                      headers={"Authorization": f"Bearer {eve}"})
    assert other.status_code == 404
    assert httpx.put(f"{server.url}/api/submissions/{mine}/final", json={"final": True},
                     headers={"Authorization": f"Bearer {eve}"}).status_code == 404
    assert httpx.get(f"{server.url}/api/admin/submissions",
                     headers={"Authorization": f"Bearer {alice}"}).status_code == 403
    assert eval_main(["participants", "revoke", "alice", "--workdir", str(organiser), "--db",
                      database_url]) == 0
    revoked = post(server, alice, path)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    admin = httpx.get(f"{server.url}/api/admin/submissions",
                      headers={"Authorization": f"Bearer {server.admin_token}"})
    assert admin.status_code == 200 and len(admin.json()["submissions"]) == 1
    # A token never starts with '-': `kit submit --token -x...` read an option (1 in 64 before).
    assert alice.startswith("pgk_") and eve.startswith("pgk_")
    as_admin = {"Authorization": f"Bearer {server.admin_token}"}
    for name, status in (("dave", 201), ("dave", 409), ("exists!", 422)):  # once 409: the text
        added = httpx.post(f"{server.url}/api/admin/participants", json={"name": name},
                           headers=as_admin)
        assert added.status_code == status, added.text


def test_invalid_files_are_explained_and_not_counted(organiser, serve, database_url, tmp_path):
    rules(organiser, "--daily-limit", "1", "--invalid-limit", "2")
    server = serve()
    token = add(organiser, database_url, "carol")
    bad = tmp_path / "bad.csv"
    good = write_submission(organiser, tmp_path / "good.csv", 0.1)
    frame = pd.read_csv(good, dtype={"id": str})
    frame.iloc[3, 2] = 7
    frame.to_csv(bad, index=False)
    first = post(server, token, bad)
    assert first.status_code == 422
    assert any("outside [0, 1]" in p and "row 4" in p for p in first.json()["problems"])
    assert post(server, token, good).status_code == 201     # the invalid file did not count
    assert post(server, token, bad).status_code == 429      # the daily limit (1) is used
    listing = httpx.get(f"{server.url}/api/submissions",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert [s["status"] for s in listing["submissions"]] == ["scored", "invalid"]


def test_upload_size_limit_and_deadline(organiser, serve, database_url, tmp_path):
    rules(organiser, "--max-upload-mb", "0.01")
    server = serve()
    token = add(organiser, database_url, "dave")
    big = tmp_path / "big.csv"
    big.write_bytes(b"id," + b"x" * 200_000 + b"\n")
    response = post(server, token, big)
    assert response.status_code == 413 and "larger" in response.json()["detail"]
    rules(organiser, "--max-upload-mb", "50")
    rules_path = competition_of(organiser).rules_path      # the deadline passes while it runs:
    write_rules(rules_path, replace(read_rules(rules_path), deadline="2020-01-01T00:00:00Z"))
    late = post(server, token, write_submission(organiser, tmp_path / "late.csv", 0.1))
    assert late.status_code == 403 and "closed" in late.json()["detail"]
    assert httpx.get(f"{server.url}/api/leaderboard").json()["ranked_by"] == "private"


def test_finals_close_and_private_board(organiser, serve, database_url, tmp_path):
    rules(organiser, "--final", "1")
    server = serve()
    teams = {name: add(organiser, database_url, name) for name in ("ann", "ben")}
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in teams.items()}
    ids = {}
    for name, flips in (("ann", (0.05, 0.3)), ("ben", (0.15,))):
        for i, flip in enumerate(flips):
            path = write_submission(organiser, tmp_path / f"{name}{i}.csv", flip, seed=i)
            ids.setdefault(name, []).append(post(server, teams[name], path).json()["id"])
    weaker = ids["ann"][1]
    assert httpx.put(f"{server.url}/api/submissions/{weaker}/final", json={"final": True},
                     headers=auth["ann"]).status_code == 200
    second = httpx.put(f"{server.url}/api/submissions/{ids['ann'][0]}/final",
                       json={"final": True}, headers=auth["ann"])
    assert second.status_code == 409 and "at most 1" in second.json()["detail"]
    before = httpx.get(f"{server.url}/api/leaderboard").json()
    assert before["ranked_by"] == "public" and "private" not in before
    assert eval_main(["close", "--workdir", str(organiser)]) == 0
    after = httpx.get(f"{server.url}/api/leaderboard").json()
    assert after["ranked_by"] == "private"
    private = {r["team"]: r for r in after["private"] if not r["reference"]}
    key = load_answers(competition_of(organiser).answers)
    from eval.scoring import score_submission
    chosen = score_submission(tmp_path / "ann1.csv", key, reveal_private=True)
    assert private["ann"]["score"] == pytest.approx(chosen["private"]["f1_macro"])
    assert private["ann"]["selected"] == "chosen" and private["ben"]["selected"] == "best public"
    assert {r["team"]: r["rank"] for r in after["public"] if not r["reference"]} == \
        {r["team"]: r["public_rank"] for r in private.values()}
    assert post(server, teams["ben"], tmp_path / "ben0.csv").status_code == 403


def test_restart_after_sigkill_keeps_every_answered_submission(organiser, serve, database_url,
                                                               tmp_path):
    server = serve()
    token = add(organiser, database_url, "erin")
    answered = {}
    for i in range(3):
        response = post(server, token, write_submission(organiser, tmp_path / f"{i}.csv", 0.1, i))
        assert response.status_code == 201
        answered[response.json()["id"]] = response.json()["score"]
    workers = children(server.process.pid)
    assert workers, "the scoring worker should be running"
    server.kill()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "orphaned workers"
    again = serve()
    listing = httpx.get(f"{again.url}/api/submissions",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert {s["id"]: s["score"] for s in listing["submissions"]} == answered
    uploads = next(organiser.glob("competitions/*/server/uploads"))
    assert not list(uploads.glob(".incoming-*"))
    assert len(list(uploads.glob("*.csv"))) == 3


def test_teams_not_distinguishable_from_the_leader_are_marked_tied(organiser, serve,
                                                                   database_url, tmp_path):
    server = serve()
    tokens = {name: add(organiser, database_url, name) for name in ("lead", "close", "far")}
    for name, flip in (("lead", 0.10), ("close", 0.11), ("far", 0.6)):
        path = write_submission(organiser, tmp_path / f"{name}.csv", flip, seed=7)
        assert post(server, tokens[name], path).status_code == 201
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:        # ties are computed in the background
        rows = httpx.get(f"{server.url}/api/leaderboard").json()["public"]
        teams = {r["team"]: r for r in rows if not r["reference"]}
        if "tied" in teams["far"]:
            break
        time.sleep(0.2)
    assert teams["lead"]["rank"] == 1 and not teams["lead"]["tied"]
    assert teams["close"]["tied"] is True and teams["far"]["tied"] is False
