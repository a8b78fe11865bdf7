"""`make bench` section "server": the grading server with 1,000 teams and 20,000 submissions in
its database, on a 1,500-film test set. Leaderboard latency (p50, p95) and scoring throughput,
measured over HTTP on 127.0.0.1 with bounded loops. Not a test: nothing here asserts a time."""
from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

TEAMS, SUBMISSIONS, TEST_FILMS = 1_000, 20_000, 1_500
READS, SCORED = 300, 48


def populate(db_url: str) -> None:
    """1,000 teams with one participant each and 20,000 scored submissions."""
    from sqlalchemy import insert
    from eval.server.database import Database, Participant, Submission, Team
    rng = random.Random(0)
    db = Database(db_url)
    start = datetime(2026, 11, 1)
    with db.write() as session:
        session.execute(insert(Team), [{"id": t + 1, "name": f"team{t}", "baseline": False,
                                        "created_at": start} for t in range(TEAMS)])
        session.execute(insert(Participant), [
            {"id": t + 1, "name": f"p{t}", "team_id": t + 1, "token_hash": f"{t:064x}",
             "revoked": False, "created_at": start} for t in range(TEAMS)])
        rows = []
        for i in range(SUBMISSIONS):
            team = rng.randrange(TEAMS) + 1
            when = start + timedelta(minutes=i)
            score = rng.random() * 0.4
            rows.append({"team_id": team, "participant_id": team, "created_at": when,
                         "day": when.strftime("%Y-%m-%d"), "status": "scored",
                         "sha256": f"{i:064x}", "filename": "s.csv", "message": "",
                         "kind": "probabilities", "public_metric": score,
                         "public_low": score - 0.03, "public_high": score + 0.03,
                         "private_metric": score + rng.gauss(0, 0.02), "final": False})
        session.execute(insert(Submission), rows)
    db.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def server_benchmark(work: str) -> dict:
    """Run the measurement; returns latencies in ms and scored submissions per second."""
    import httpx
    sys.path.insert(0, str(Path(__file__).parent))
    from measurements import make_answer_key
    from eval.cli import main as eval_main
    work = Path(work)
    competition = work / "competitions" / "bench"
    if not (competition / "submission.csv").exists():
        make_answer_key(str(competition), TEST_FILMS)
    (work / "grading.db").unlink(missing_ok=True)
    db_url = f"sqlite:///{work / 'grading.db'}"
    populate(db_url)
    eval_main(["rules", "--workdir", str(work), "--competition", "bench", "--daily-limit",
               "10000"])
    tokens = []
    for i in range(8):
        import contextlib
        import io
        import json
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            eval_main(["participants", "add", f"bench{i}", "--workdir", str(work),
                       "--competition", "bench", "--db", db_url, "--json"])
        tokens.append(json.loads(out.getvalue())["token"])
    port = 18000 + random.Random().randrange(1000)
    url = f"http://127.0.0.1:{port}"
    cores = __import__("os").cpu_count() or 1
    server = subprocess.Popen([sys.executable, "-m", "eval", "serve", "--workdir", str(work),
                               "--competition", "bench", "--db", db_url, "--port", str(port),
                               "--workers", str(cores), "--queue", "64"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        client = httpx.Client(timeout=60)
        client.get(f"{url}/api/leaderboard")             # references computed once
        timings = {}
        for name, path in (("api", "/api/leaderboard"), ("page", "/leaderboard")):
            samples = []
            for _ in range(READS):
                started = time.perf_counter()
                assert client.get(url + path).status_code == 200
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = {"p50_ms": round(statistics.median(samples), 1),
                             "p95_ms": round(percentile(samples, 95), 1)}
        submission = competition / "submission.csv"

        def submit(i: int) -> int:
            with open(submission, "rb") as handle:
                return client.post(f"{url}/api/submissions", files={"file": handle},
                                   headers={"Authorization": f"Bearer {tokens[i % 8]}"}
                                   ).status_code
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(submit, range(4)))                # workers warm
            started = time.perf_counter()
            codes = list(pool.map(submit, range(SCORED)))
            seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)
    return {"teams": TEAMS, "submissions_in_db": SUBMISSIONS, "test_films": TEST_FILMS,
            "leaderboard_api": timings["api"], "leaderboard_page": timings["page"],
            "scored": codes.count(201), "scoring_workers": cores,
            "scored_per_second": round(codes.count(201) / seconds, 2),
            "scored_per_second_per_core": round(codes.count(201) / seconds / cores, 2)}
