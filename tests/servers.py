"""Real services for the server tests: a grading server in its own uvicorn process, a throwaway
PostgreSQL cluster, and the organiser's competition they serve."""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

PG_HINT = ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); "
           "`apt-get install postgresql` (as root) enables these tests")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GradingServer:
    """`python -m eval serve` in a subprocess on 127.0.0.1 at a free port."""

    def __init__(self, workdir: Path, db_url: str, *options: str, wrapper: str | None = None):
        """``wrapper``: a shell command line run before the server in the same shell (``sh -c``
        with ``exec``), e.g. to mount a small file system in a private namespace."""
        self.workdir, self.db_url, self.options, self.wrapper = workdir, db_url, options, wrapper
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = workdir / f"server-{self.port}.log"

    def start(self) -> "GradingServer":
        command = [sys.executable, "-m", "eval", "serve", "--workdir", str(self.workdir),
                   "--port", str(self.port), "--db", self.db_url, "--workers", "1",
                   *self.options]
        if self.wrapper:
            command = ["unshare", "-m", "sh", "-c",
                       f"{self.wrapper} && exec {' '.join(map(shlex.quote, command))}"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    @property
    def admin_token(self) -> str:
        return next(self.workdir.glob("competitions/*/server/admin-token")).read_text().strip()


class PostgresCluster:
    """A throwaway cluster on a Unix socket; the postgres user runs it when we are root."""

    def __init__(self):
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            pytest.skip(PG_HINT)
        self.bin = Path(binaries[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="kit-pg-"))
        self.data, self.socket = self.root / "data", self.root
        self.port = free_port()
        self.count = 0
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                  f"-k {self.socket} -p {self.port} -c listen_addresses='' -c fsync=off "
                  "-c max_connections=200", "start")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket}&port={self.port}"

    def new_database(self) -> str:
        import psycopg
        self.count += 1
        name = f"kit_{self.count}"
        with psycopg.connect(host=str(self.socket), port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grading.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(scope="session")
def organiser_template(synthetic_dir, tmp_path_factory):
    """An organiser's work folder: the synthetic data prepared and split into a competition."""
    from kit.cli import main
    root = tmp_path_factory.mktemp("organiser")
    assert main(["prepare", str(synthetic_dir), "--workdir", str(root), "--size", "115x77",
                 "--name", "posters", "--shard-size", "64", "--scheduler", "processes"]) == 0
    assert main(["split", "--workdir", str(root), "--min-support", "5", "--seed", "2"]) == 0
    return root


@pytest.fixture
def organiser(organiser_template, tmp_path):
    """A private copy of the organiser's work folder (rules, server state and close are per
    test)."""
    root = tmp_path / "organiser"
    shutil.copytree(organiser_template, root)
    return root


@pytest.fixture
def serve(organiser, database_url):
    """Start grading servers of the organiser's competition on the test's database."""
    started = []

    def start(*options: str, db_url: str | None = None, wrapper: str | None = None
              ) -> GradingServer:
        server = GradingServer(organiser, db_url or database_url, *options,
                               wrapper=wrapper).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
