"""Hostile and careless requests against a real grading server: each ends in one clear 4xx and
the server keeps serving."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.test_server import add, post, write_submission


def raw_request(server, data: bytes, pause: float = 0.0, then: bytes = b"",
                timeout: float = 30) -> bytes:
    """Send bytes on a plain socket (optionally pausing mid-request); what came back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            time.sleep(pause)
            if then:
                sock.sendall(then)
        except OSError:         # the server may answer and close before reading everything
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d+)", response)
    return int(match.group(1)) if match else 0


@pytest.fixture
def server(serve):
    return serve("--body-timeout", "2")


def test_slow_and_malformed_bodies_and_huge_headers(server, organiser, database_url):
    token = add(organiser, database_url, "mallory")
    head = (f"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 5000\r\n\r\n")
    # The socket gives up after 15 s: the server must have cut the stalled body before that.
    slow = raw_request(server, head.encode() + b"--XX\r\n", pause=6, then=b"more", timeout=15)
    assert status_of(slow) == 408
    garbage = b"this is not multipart at all"
    malformed = raw_request(server, head.replace("5000", str(len(garbage))).encode() + garbage)
    assert status_of(malformed) in (400, 422)
    huge = raw_request(server, b"GET /api/leaderboard HTTP/1.1\r\nHost: x\r\nX-Big: " +
                       b"a" * 10_000_000 + b"\r\n\r\n")
    assert status_of(huge) in (400, 431) or huge == b""
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_path_like_names_methods_and_query_tokens(server, organiser, database_url, tmp_path):
    token = add(organiser, database_url, "trudy")
    path = write_submission(organiser, tmp_path / "ok.csv", 0.1)
    response = post(server, token, path, name="../../../../etc/cron.d/evil\u202e.csv")
    assert response.status_code == 201 and response.json()["filename"] == "evil.csv"
    uploads = next(organiser.glob("competitions/*/server/uploads"))
    assert [p.name for p in uploads.iterdir()] == [f"{response.json()['sha256']}.csv"]
    auth = {"Authorization": f"Bearer {token}"}
    for method, url in (("DELETE", "/api/submissions"), ("GET", "/api/submissions/1/final"),
                        ("POST", "/api/leaderboard"), ("PATCH", "/api/rules")):
        assert httpx.request(method, server.url + url, headers=auth).status_code == 405
    assert httpx.get(f"{server.url}/api/submissions?access_token={token}").status_code == 400
    assert httpx.get(f"{server.url}/api/submissions",
                     headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert httpx.get(f"{server.url}/api/submissions/abc", headers=auth).status_code == 422
    for number in ("99999999999999999999", "0", "-1"):    # beyond the id column: once a 500
        for method, url in (("GET", f"/api/submissions/{number}"),
                            ("PUT", f"/api/submissions/{number}/final")):
            response = httpx.request(method, server.url + url, headers=auth, json={"final": True})
            assert response.status_code == 422, (method, url, response.text)
            assert "submission_id" in response.text
    broken = httpx.put(f"{server.url}/api/submissions/1/final", content=b"{not json",
                       headers={**auth, "Content-Type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("body: not valid JSON (")      # once "0: JSON ..."


def test_web_forms_need_the_session_and_its_csrf_token(server, organiser, database_url, tmp_path):
    token = add(organiser, database_url, "walter")
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    assert client.get("/me").status_code == 303                      # to /login
    login = client.post("/login", data={"token": token})
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age" in cookie
    page = client.get("/me").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    path = write_submission(organiser, tmp_path / "web.csv", 0.1)
    forged = client.post("/me/submit", data={"message": "x", "csrf": "forged"},
                         files={"file": ("web.csv", path.read_bytes())})
    assert forged.status_code == 403
    sent = client.post("/me/submit", data={"message": "<b>hi</b>", "csrf": csrf},
                       files={"file": ("web.csv", path.read_bytes())})
    assert sent.status_code == 201 and "&lt;b&gt;hi&lt;/b&gt;" in sent.text
    tampered = client.cookies.get("kit_session").replace("a", "b", 1)
    other = httpx.get(f"{server.url}/me", cookies={"kit_session": tampered},
                      follow_redirects=False)
    assert other.status_code == 303
    assert client.post("/admin/close", data={"csrf": csrf}).status_code == 403
    for url in ("/", "/leaderboard", "/me", "/api/leaderboard"):
        headers = client.get(url).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_admin_rules_form_with_bad_fields_shows_the_page_with_the_reason(server, organiser):
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    assert client.post("/login", data={"token": server.admin_token}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin").text).group(1)
    rules_file = next(organiser.glob("competitions/*/split.json")).with_name("rules.json")
    before = rules_file.read_text() if rules_file.exists() else None
    fields = {"daily_limit": "5", "invalid_daily_limit": "20", "final_limit": "2",
              "deadline": "", "metric": "f1_macro", "max_upload_mb": "50", "csrf": csrf}
    for name, value, said in (("daily_limit", "", "rule daily_limit"),     # once JSON: 'Input
                              ("final_limit", "two", "rule final_limit"),  # should be a valid
                              ("max_upload_mb", "nan", "rule max_upload_mb"),  # integer'
                              ("metric", "", "unknown ranking metric")):
        answer = client.post("/admin/rules", data={**fields, name: value})
        assert answer.status_code == 422, (name, answer.text[:200])
        assert answer.headers["content-type"].startswith("text/html") and said in answer.text
    far = "0001-01-01T00:00:00+14:00"           # refused; the form keeps it to be mended
    answer = client.post("/admin/rules", data={**fields, "deadline": far, "daily_limit": "9"})
    assert answer.status_code == 422 and "out of range in UTC" in answer.text
    assert f'value="{far}"' in answer.text and 'name="daily_limit" type="number" min="1" ' \
        'max="10000" required value="9"' in answer.text
    past = client.post("/admin/rules", data={**fields, "deadline": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and "has already passed" in past.text   # once: closed at once
    assert (rules_file.read_text() if rules_file.exists() else None) == before
    assert client.post("/admin/rules", data=fields).status_code == 303
    assert rules_file.exists()


def test_failed_logins_are_rate_limited_per_address(server, organiser, database_url):
    token = add(organiser, database_url, "victor")
    codes = [httpx.post(f"{server.url}/login", data={"token": f"guess-{i}"}).status_code
             for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    assert httpx.post(f"{server.url}/login", data={"token": token}).status_code == 429


def test_a_full_disk_refuses_the_upload_with_507_and_leaves_nothing(serve, organiser,
                                                                    database_url, tmp_path):
    from kit.competition import Competition
    from kit.workdir import Workdir
    uploads = Competition.find(Workdir(organiser)).server / "uploads"
    uploads.mkdir(parents=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f"mount -t tmpfs -o size=16k tmpfs {uploads}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a small tmpfs in a private namespace here (needs root)")
    server = serve(wrapper=f"mount -t tmpfs -o size=16k tmpfs {uploads}")
    token = add(organiser, database_url, "dora")
    path = write_submission(organiser, tmp_path / "full.csv", 0.1)
    assert path.stat().st_size > 16_384
    response = post(server, token, path)
    assert response.status_code == 507 and "disk is full" in response.json()["detail"]
    listing = httpx.get(f"{server.url}/api/submissions",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert listing["submissions"] == [] and listing["remaining_today"] == 5
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_a_port_in_use_or_a_foreign_host_is_one_message(server, organiser, database_url):
    for options in (["--port", str(server.port)], ["--host", "999.1.1.1", "--port", "8000"]):
        result = subprocess.run([sys.executable, "-m", "eval", "serve", "--workdir",
                                 str(organiser), "--db", database_url, *options],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "error: cannot listen on" in result.stderr and "Traceback" not in result.stderr
    assert httpx.get(f"{server.url}/api/health").status_code == 200


@pytest.mark.parametrize("options, message", [
    (["--workers", "100000"], "argument --workers: must be from 1 to 64"),
    (["--body-timeout", "nan"], "argument --body-timeout: must be from 1 to 3600, got nan"),
    (["--port", "0"], "argument --port: must be from 1 to 65,535"),
    (["--db", "sqlite://"], "is SQLite in memory, which loses every submission"),   # once served
    (["--db", ""], "--db is empty"),           # once SQLite beside the competition, unsaid
    (["--db", "mysql://h/kit"], "is mysql; the server runs on SQLite"),   # once "No module"
    (["--db", "sqlite:////no/such/folder/grading.db"], "create it first"),    # once made
])
def test_server_options_out_of_range_are_refused_before_it_starts(organiser, options, message):
    result = subprocess.run([sys.executable, "-m", "eval", "serve", "--workdir", str(organiser),
                             *options], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr

