"""The JSON API's bodies as pydantic models: what `/api/openapi.json` promises, status by status.

Every error is ``{"detail": "one sentence"}``; a request the API cannot read (a path, a field)
adds ``errors``, one entry per problem. A file that is not a valid submission answers 422 with
the recorded submission and its problems."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


Interval = Annotated[list[float], Field(min_length=2, max_length=2,
                                        description="low and high end")]


class Problem(BaseModel):
    """An error: one sentence."""
    detail: str = Field(description="what went wrong, in one sentence")


class FieldProblem(BaseModel):
    """One field of a request the API could not read."""
    loc: list[str | int] = Field(description="where: path, query or body, then the field")
    msg: str
    type: str


class RequestProblem(Problem):
    """A request the API could not read: one sentence naming each field, and the list."""
    errors: list[FieldProblem]


class RulesView(BaseModel):
    """The competition's rules."""
    daily_limit: int
    invalid_daily_limit: int
    final_limit: int
    deadline: str | None = Field(description="ISO 8601, UTC; null: no deadline")
    metric: str
    max_upload_mb: float


class CompetitionStatus(BaseModel):
    """The competition, its rules, whether it is closed and the time left."""
    competition: str
    rules: RulesView
    closed: bool
    now: str
    seconds_left: int | None = Field(description="until the deadline; null: no deadline")


class Remaining(BaseModel):
    """What a team has left today, and when that resets."""
    remaining_today: int = Field(description="scored submissions the team has left today")
    invalid_remaining_today: int
    resets_at: str = Field(description="the next UTC midnight")


class Me(Remaining, CompetitionStatus):
    """The caller, their team, its quota and the competition's status."""
    participant: str
    team: str


class SubmissionView(BaseModel):
    """A submission as its team sees it: never a private number before the close."""
    id: int
    status: Literal["pending", "scored", "invalid", "failed"]
    created_at: str
    filename: str
    message: str
    kind: str | None = Field(description="probabilities, decisions or labels, once scored")
    sha256: str
    score: float | None = Field(description="the public score by the competition's metric")
    interval: Interval | None = Field(description="its 95% bootstrap interval")
    public: dict[str, Any] | None = Field(description="every metric on the public part")
    problems: list[str] | None = Field(description="why the file is invalid or failed")
    final: bool


class SubmissionDetail(SubmissionView):
    """A submission with its problems or per-genre scores."""
    private_score: float | None = Field(None, description="only once the competition is closed")


class TeamSubmissions(Remaining):
    """A team's submissions, newest first, and its quota."""
    team: str
    submissions: list[SubmissionDetail]


class Scored(Remaining, SubmissionView):
    """A submission scored on the public part: its score and the team's rank."""
    metric: str
    rank: int | None = Field(description="the team's rank on the public board")


class Rejected(Remaining, SubmissionView):
    """A file that is not a valid submission: what is wrong with it."""
    detail: str
    metric: str


class BoardRow(BaseModel):
    """A team's row, or a reference predictor's (unranked); the private board's rows carry
    the chosen submission and the shake-up instead of the public entries."""
    team: str
    reference: bool
    rank: int | None
    score: float | None
    baseline: bool | None = None
    interval: Interval | None = None
    entries: int | None = None
    last_submission: str | None = None
    best: int | None = None
    tied: bool | None = Field(None, description="not distinguishable from the leader")
    submission: int | None = None
    selected: Literal["chosen", "best public"] | None = None
    public_rank: int | None = None
    shake_up: int | None = None


class Leaderboard(CompetitionStatus):
    """The public board, and the private one once the competition is closed."""
    metric: str
    ranked_by: Literal["public", "private"]
    public: list[BoardRow]
    private: list[BoardRow] | None = Field(None, description="only once the competition is "
                                                            "closed")


class RulesForm(BaseModel):
    """The admin page's rules form, each field as the browser sent it (an empty one too)."""
    daily_limit: str = ""
    invalid_daily_limit: str = ""
    final_limit: str = ""
    deadline: str = ""
    metric: str = ""
    max_upload_mb: str = ""
    csrf: str = ""


class RequestBody(BaseModel):
    """A body sent to the API: types as declared (``0`` is not ``false``) and no unknown field
    (a misspelt ``"finale": false`` would otherwise select a final by the default)."""
    model_config = ConfigDict(strict=True, extra="forbid")


class FinalChoice(RequestBody):
    """Select (true) or unselect (false) a submission as a final."""
    final: bool = True


class NewParticipant(RequestBody):
    """A participant to add; without a team, a team of their own name."""
    name: str
    team: str | None = None
    baseline: bool = False


class ParticipantAdded(BaseModel):
    """A participant added, with their token."""
    participant: str
    team: str
    baseline: bool
    token: str = Field(description="shown this once; only its SHA-256 is stored")


class ParticipantView(BaseModel):
    """A participant, their team and how many submissions they made."""
    participant: str
    team: str
    baseline: bool
    revoked: bool
    submissions: int
    created_at: str


class Participants(BaseModel):
    """Every participant."""
    participants: list[ParticipantView]


class Revoked(BaseModel):
    """A participant whose token no longer works."""
    participant: str
    revoked: bool


class TeamSubmission(SubmissionDetail):
    """A submission and its team."""
    team: str


class AllSubmissions(BaseModel):
    """Every team's submissions, newest first."""
    submissions: list[TeamSubmission]


class Health(BaseModel):
    """The server answers."""
    ok: bool


def answers(*statuses: int, invalid: Any = None) -> dict[int, dict]:
    """OpenAPI ``responses``: a ``Problem`` body for each error status, and ``invalid`` as the
    body of 422 (what the API answers when it cannot use a request)."""
    documented = {status: {"model": Problem} for status in statuses}
    if invalid is not None:
        documented[422] = {"model": invalid}
    return documented
