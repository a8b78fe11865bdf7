"""The whole hosted competition, organiser and participant in two work folders, the grading
server a real uvicorn process: export, join, train, predict, submit, finals, close."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import pytest

from eval.cli import main as eval_main
from tests.conftest import run_cli
from tests.servers import GradingServer, free_port
from tests.test_server import add


@contextmanager
def plain_http_server(folder):
    """Python's own http.server on a free port: HTML pages, 404s and 501s, no JSON."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                "127.0.0.1", "--directory", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def hosted(organiser, tmp_path):
    server = GradingServer(organiser, f"sqlite:///{tmp_path / 'grading.db'}")
    yield server
    server.stop()


def test_participant_flow_from_bundle_to_private_board(hosted, organiser, tmp_path, capsys,
                                                       monkeypatch):
    server = hosted.start()
    assert eval_main(["rules", "--workdir", str(organiser), "--daily-limit", "3",
                      "--final", "1"]) == 0
    code, bundle, err = run_cli(capsys, "export", "--workdir", str(organiser), "--server",
                                server.url)
    assert code == 0, err
    token = add(organiser, hosted.db_url, "alice", "red")
    rival = add(organiser, hosted.db_url, "bob", "blue")
    participant = tmp_path / "participant"
    code, joined, err = run_cli(capsys, "join", bundle["bundle"], "--workdir", str(participant))
    assert code == 0 and joined["server"] == server.url, err

    work = ["--workdir", str(participant)]
    code, _, err = run_cli(capsys, "train", *work, "--model", "lenet", "--epochs", "1",
                           "--batch-size", "32", "--name", "lenet", "--workers", "0")
    assert code == 0, err
    out = str(participant / "submissions")
    code, predicted, err = run_cli(capsys, "predict", *work, "--run", "lenet", "--out", out)
    assert code == 0, err
    csv = predicted["submission"]

    monkeypatch.setenv("KIT_TOKEN", token)
    code, sent, err = run_cli(capsys, "submit", csv, *work, "--message", "first try")
    assert code == 0, err
    assert sent["rank"] == 1 and sent["remaining_today"] == 2 and 0 <= sent["public_score"] <= 1
    code, mine, _ = run_cli(capsys, "submissions", *work)
    assert code == 0 and [s["message"] for s in mine["submissions"]] == ["first try"]
    code, final, _ = run_cli(capsys, "final", str(sent["id"]), *work)
    assert code == 0 and final["final"] is True

    # Every refusal is one clear message with its own exit code.
    broken = tmp_path / "broken.csv"
    broken.write_text("id,Drama\n1,2\n")
    code, _, err = run_cli(capsys, "submit", str(broken), *work)
    assert code == 2 and "missing genre columns" in err
    code, _, err = run_cli(capsys, "submit", csv, *work, "--token", "wrong")
    assert code == 4 and "unknown token" in err
    code, _, err = run_cli(capsys, "final", str(sent["id"] + 99), *work)
    assert code == 2 and "no submission" in err
    code, _, err = run_cli(capsys, "submit", csv, *work, "--token", rival, "--server",
                           "http://127.0.0.1:9")
    assert code == 1 and "cannot reach the server http://127.0.0.1:9" in err
    assert "is it running at that address?" in err
    with plain_http_server(tmp_path) as other:      # some other web server at that address
        for command in (["submit", csv], ["submissions"], ["final", str(sent["id"])]):
            code, _, err = run_cli(capsys, *command, *work, "--server", other)
            assert code == 1 and "not as a poster-genre-kit grading server" in err, err
    for command in (["submit", csv], ["submissions"]):   # the grading server, but under /api
        code, _, err = run_cli(capsys, *command, *work, "--server", server.url + "/api")
        assert code == 1 and "not as a poster-genre-kit grading server" in err, err
    code, _, err = run_cli(capsys, "final", str(sent["id"]), *work, "--server",
                           server.url + "/api")                     # once 'error: Not Found'
    assert code == 2 and "no page or API endpoint at /api/api/submissions/" in err, err
    for address in ("http://[::1", "http://:80", "http://host:port", "localhost:8000", ""):
        with pytest.raises(SystemExit) as refused:                          # [::1: a traceback
            run_cli(capsys, "submit", csv, *work, "--server", address)
        assert refused.value.code == 2
        assert "argument --server: the address" in capsys.readouterr().err
    with pytest.raises(SystemExit):          # once sent, then "invalid submission: the message"
        run_cli(capsys, "submit", csv, *work, "--message", "x" * 1001)
    assert "at most 1,000 characters, got 1,001" in capsys.readouterr().err
    assert run_cli(capsys, "submit", csv, *work, "--token", rival)[0] == 0

    assert eval_main(["--workdir", str(organiser), "close"]) == 0
    code, _, err = run_cli(capsys, "submit", csv, *work)
    assert code == 3 and "closed" in err
    board = httpx.get(f"{server.url}/api/leaderboard").json()
    assert board["ranked_by"] == "private"
    teams = [row["team"] for row in board["private"] if not row["reference"]]
    assert sorted(teams) == ["blue", "red"]
    assert not (participant / "competitions" / joined["competition"] / "private").exists()


def test_unsafe_token_files_and_unusable_tokens_are_refused(organiser, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.delenv("KIT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    token = tmp_path / "poster-genre-kit" / "token"
    token.parent.mkdir()
    token.write_text("secret\n")
    os.chmod(token, 0o644)
    sample = next(organiser.glob("competitions/*/public/sample_submission.csv"))
    code, _, err = run_cli(capsys, "submit", str(sample), "--workdir", str(organiser),
                           "--server", "http://127.0.0.1:9")
    assert code == 4 and "chmod 600" in " ".join(err.split())
    os.chmod(token, 0o600)
    code, _, err = run_cli(capsys, "submit", str(sample), "--workdir", str(organiser),
                           "--server", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach" in err
    # Tokens no HTTP header can carry: once a UnicodeEncodeError traceback ('é') or "cannot
    # reach the server ... Illegal header value" (a line break, a blank --token).
    for source, value in (("--token", "sécret"), ("--token", "two\nlines"), ("--token", " "),
                          ("KIT_TOKEN", "a b"), ("the token file", "\u00e9t\u00e9\n")):
        options = ["--token", value] if source == "--token" else []
        if source == "KIT_TOKEN":
            monkeypatch.setenv("KIT_TOKEN", value)
        token.write_text(value)
        code, _, err = run_cli(capsys, "submit", str(sample), "--workdir", str(organiser),
                               "--server", "http://127.0.0.1:9", *options)
        assert code == 4 and f"{source}" in err and "no usable token" in err, (source, err)
        monkeypatch.delenv("KIT_TOKEN", raising=False)


@contextmanager
def canned_json_server(answers):
    """A real HTTP server on a free port answering each request with the next (status, body)
    of ``answers`` as JSON: what some other server, or a broken one, might send."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    queue = list(answers)

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = queue.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        do_GET = do_POST = do_PUT = answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answer_is_read_as_the_api_promises_it(workdir, capsys, monkeypatch):
    """An answer of the wrong shape ended in a traceback (a score that is text, a one-number
    interval), and the fields a server sends were printed with their control characters."""
    from kit.cli import main as kit_main
    monkeypatch.setenv("KIT_TOKEN", "secret")
    sample = str(next(workdir.glob("competitions/*/public/sample_submission.csv")))
    scored = {"id": 7, "status": "scored", "created_at": "2026-12-07T01:00:00Z",
              "filename": "s.csv", "message": "", "kind": "probabilities", "sha256": "ab",
              "score": 0.25, "interval": [0.2, 0.3], "public": {}, "problems": None,
              "final": False, "metric": "f1_macro\x1b[2J", "rank": 1, "remaining_today": 4,
              "invalid_remaining_today": 20, "resets_at": "tomorrow\x1b[31m"}
    broken = [{**scored, "score": "high"}, {**scored, "interval": [0.2]},
              {key: value for key, value in scored.items() if key != "rank"}]
    with canned_json_server([(201, body) for body in broken]) as url:
        for body in broken:
            code, _, err = run_cli(capsys, "submit", sample, "--workdir", str(workdir),
                                   "--server", url)
            assert code == 1 and "not as a poster-genre-kit grading server" in err, err
            assert "Traceback" not in err
    team = {"team": "red\x1b[2J", "remaining_today": 4, "invalid_remaining_today": 20,
            "resets_at": "tomorrow\x1b[31m", "submissions": [scored]}
    with canned_json_server([(201, scored), (200, team)]) as url:
        assert kit_main(["submit", sample, "--workdir", str(workdir), "--server", url]) == 0
        assert kit_main(["submissions", "--workdir", str(workdir), "--server", url]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "f1_macro\\x1b[2J 0.2500 [0.200, 0.300], rank 1" in err, err
    assert "submissions of team red\\x1b[2J" in err and "resets at tomorrow\\x1b[31m" in err
