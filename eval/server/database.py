"""The server's database: SQLAlchemy 2 models, a versioned schema, and write transactions that
serialise per team (a row lock on PostgreSQL, an immediate write lock on SQLite)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, cast,
                        create_engine, event, select, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from kit.errors import KitError

SCHEMA_VERSION = "1"


class Base(DeclarativeBase):
    """The tables of the grading database."""


class Meta(Base):
    """Key-value facts about the database: its schema version and the board's version."""
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Team(Base):
    """A team: what daily limits and final selections count against."""
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)   # an organiser's baseline
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Participant(Base):
    """One person's token (its SHA-256 only) and team."""
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Submission(Base):
    """One uploaded file: its stored name, status, scores and problems."""
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)     # UTC date, for daily limits
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending scored invalid failed
    sha256: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str | None] = mapped_column(String(16))
    public_metric: Mapped[float | None] = mapped_column(Float, index=True)
    public_low: Mapped[float | None] = mapped_column(Float)
    public_high: Mapped[float | None] = mapped_column(Float)
    private_metric: Mapped[float | None] = mapped_column(Float)
    public: Mapped[dict | None] = mapped_column(JSON)      # public-part metrics shown to the team
    private: Mapped[dict | None] = mapped_column(JSON)     # never shown before the close
    problems: Mapped[list | None] = mapped_column(JSON)    # validation problems of an invalid file
    final: Mapped[bool] = mapped_column(Boolean, default=False)


def default_url(server_dir: Path) -> str:
    """SQLite in the competition's server folder."""
    return f"sqlite:///{(server_dir / 'grading.db').resolve()}"


def connect(url: str) -> Engine:
    """An engine for ``url`` with the schema created (or checked to be this version)."""
    try:
        parsed = make_url(url)        # postgresql:// means psycopg (3) from SQLAlchemy 2.1
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise KitError(f"the database {_safe(url)} is {parsed.get_backend_name()}; the "
                           "server runs on SQLite (sqlite:////srv/grading.db) or PostgreSQL "
                           "(postgresql+psycopg://user@host/name)")
        engine = create_engine(parsed, pool_pre_ping=True, future=True)
    except (ArgumentError, ImportError, ValueError) as error:
        raise KitError(f"cannot use the database {_safe(url)}: {error}") from None
    if engine.dialect.name == "sqlite":
        if engine.url.database in (None, "", ":memory:") or "mode=memory" in url:
            raise KitError(f"the database {_safe(url)} is SQLite in memory, which loses every "
                           "submission when the server stops; name a file, as in "
                           "sqlite:////srv/grading.db")
        folder = Path(engine.url.database).parent
        if not folder.is_dir():     # made up, a typo would start an empty competition
            raise KitError(f"the database {_safe(url)} would be in {folder}, which is not a "
                           "folder here: create it first, or mend the URL")
        _sqlite_setup(engine)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            version = session.get(Meta, "schema_version")
            if version is None:
                session.add(Meta(key="schema_version", value=SCHEMA_VERSION))
            elif version.value != SCHEMA_VERSION:
                raise KitError(f"the database {_safe(url)} has schema version {version.value}; "
                               f"this server needs version {SCHEMA_VERSION}")
            if session.get(Meta, "board_version") is None:
                session.add(Meta(key="board_version", value="0"))
    except OperationalError as error:
        raise KitError(f"cannot open the database {_safe(url)}: {error.orig}") from None
    return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:       # an unparsable URL is shown as given, minus anything after '@'
        return str(url).split("@")[-1]


def _sqlite_setup(engine: Engine) -> None:
    """WAL, full fsync, a busy timeout, and transactions that say whether they will write."""

    @event.listens_for(engine, "connect")
    def _on_connect(connection, _record):
        connection.isolation_level = None        # the "begin" hook below issues BEGIN itself
        cursor = connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get("write_lock")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Sessions for reading, and write transactions that lock one team."""

    def __init__(self, url: str):
        self.url = url
        self.engine = connect(url)
        self.reading = sessionmaker(self.engine, expire_on_commit=False)
        self._writing = sessionmaker(self.engine.execution_options(write_lock=True),
                                     expire_on_commit=False)

    @contextmanager
    def write(self, team_id: int | None = None) -> Iterator[Session]:
        """A transaction that holds the team's lock (when given) until it commits."""
        with self._writing() as session, session.begin():
            if team_id is not None:
                session.execute(select(Team.id).where(Team.id == team_id).with_for_update())
            yield session

    def board_version(self) -> int:
        """A counter bumped by every change that can move the leaderboard."""
        with self.reading() as session:
            return int(session.get(Meta, "board_version").value)

    @staticmethod
    def bump_board(session: Session) -> None:
        """Within a write transaction: the leaderboard changed (atomic on every database)."""
        session.execute(update(Meta).where(Meta.key == "board_version")
                        .values(value=cast(cast(Meta.value, Integer) + 1, Text)))

    def close(self) -> None:
        self.engine.dispose()
