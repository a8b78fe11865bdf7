"""`kit submit`, `kit submissions`, `kit final`: the participant's client of the grading server.

Exit codes: 0 done, 2 invalid file, 3 refused by the rules (limit, deadline, closed), 4 not
authorised, 1 server unreachable or failing."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from eval.server import schemas
from kit.arguments import check_server_url
from kit.competition import Competition
from kit.errors import KitError
from kit.workdir import Workdir

INVALID, RULES, UNAUTHORISED, UNREACHABLE = 2, 3, 4, 1


class ClientError(KitError):
    """A refused or failed request, with the exit code the command ends with."""

    def __init__(self, message: str, exit_code: int, problems: list[str] | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.problems = problems or []


def token_file() -> Path:
    """Where `kit submit` looks for a saved token (under XDG_CONFIG_HOME)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "poster-genre-kit" / "token"


def find_token(given: str | None) -> str:
    """--token, else KIT_TOKEN, else the token file (refused when others can read it)."""
    if given:
        return _usable_token(given, "--token")
    if os.environ.get("KIT_TOKEN"):
        return _usable_token(os.environ["KIT_TOKEN"], "KIT_TOKEN")
    path = token_file()
    if path.is_file():
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ClientError(f"the token file {path} can be read by others; run "
                              f"`chmod 600 {path}` first", UNAUTHORISED)
        try:
            return _usable_token(path.read_text(encoding="utf-8"), f"the token file {path}")
        except UnicodeDecodeError:
            raise ClientError(f"the token file {path} is not text", UNAUTHORISED) from None
    raise ClientError(f"no token: pass --token, set KIT_TOKEN, or save it in {path} (mode 600)",
                      UNAUTHORISED)


def _usable_token(text: str, source: str) -> str:
    """The token without surrounding blanks; ClientError when it cannot be one (blank, or
    holding spaces or characters an HTTP header cannot carry; tokens are printable ASCII)."""
    token = text.strip()
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ClientError(f"{source} holds no usable token (tokens are letters, digits, '-' and "
                          "'_', as the organiser gave them)", UNAUTHORISED)
    return token


def find_server(given: str | None, competition: Competition) -> str:
    """The grading server's URL: ``--server``, else the one the bundle names."""
    server = given or competition.info().get("server")
    if not server:
        raise ClientError("no server: pass --server URL (the bundle names none)", UNREACHABLE)
    try:
        return check_server_url(server, "--server" if given else "the bundle's server URL")
    except KitError as error:
        raise ClientError(str(error), UNREACHABLE) from None


def _request(method: str, url: str, token: str, **options):
    import httpx
    try:
        return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"},
                             timeout=httpx.Timeout(300.0, connect=10.0), **options)
    except httpx.HTTPError as error:
        raise ClientError(f"cannot reach the server {url}: {error or type(error).__name__}; "
                          "is it running at that address? (--server gives another than the "
                          "bundle's)", UNREACHABLE) from None


def _not_the_grading_server(response) -> ClientError:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return ClientError(f"{response.request.url} answered {response.status_code} "
                       f"{response.reason_phrase} ({kind}), not as a poster-genre-kit grading "
                       "server: is --server this competition's address?", UNREACHABLE)


def _answer(response, expected: int, promised, names_a_submission: bool = False) -> dict:
    """The JSON body of a ``expected`` answer, as the server's pydantic model ``promised``
    reads it; otherwise the ClientError that says why: a refusal, with its exit code, or a server
    that is not the grading server (a 404 too, unless the request ``names_a_submission``:
    nothing else can be missing)."""
    from pydantic import ValidationError
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _not_the_grading_server(response)
    if response.status_code == expected:
        try:
            return promised.model_validate(body).model_dump(mode="json", exclude_unset=True)
        except ValidationError:
            raise _not_the_grading_server(response) from None
    detail, code = body.get("detail"), response.status_code
    if not isinstance(detail, str):
        raise _not_the_grading_server(response)
    if code == 401:
        raise ClientError(f"not authorised: {detail}", UNAUTHORISED)
    if code in (403, 409, 429):
        raise ClientError(f"refused by the rules: {detail}", RULES)
    if code == 404:
        if not names_a_submission:
            raise _not_the_grading_server(response)
        raise ClientError(detail, INVALID)
    if code in (413, 422):
        problems = body.get("problems")
        listed = isinstance(problems, list) and all(isinstance(p, str) for p in problems)
        raise ClientError(f"invalid submission: {detail}", INVALID, problems if listed else [])
    raise ClientError(f"the server answered {code}: {detail}", UNREACHABLE)


def check_file(path: str, competition: Competition) -> str:
    """Validate the CSV locally with the harness's parser, so an invalid file costs no upload."""
    from eval.submission import SubmissionError, read_submission
    try:
        return read_submission(path, competition.test_ids(), competition.genres()).kind
    except SubmissionError as error:
        raise ClientError(f"invalid submission {path}", INVALID, error.problems) from None


def submit(workdir: Workdir, path: str, server: str | None, token: str | None, message: str,
           competition: str | None, check_only: bool = False) -> dict:
    """Check ``path`` locally, then upload it; the server's score, rank and remaining quota."""
    found = Competition.find(workdir, competition)
    kind = check_file(path, found)
    if check_only:
        return {"submission": path, "valid": True, "kind": kind}
    url, token = find_server(server, found), find_token(token)
    with open(path, "rb") as handle:
        response = _request("POST", f"{url}/api/submissions", token,
                            files={"file": (Path(path).name, handle, "text/csv")},
                            data={"message": message})
    body = _answer(response, 201, schemas.Scored)
    return {"submission": path, "id": body["id"], "metric": body["metric"],
            "public_score": body["score"], "interval": body["interval"], "rank": body["rank"],
            "remaining_today": body["remaining_today"], "resets_at": body["resets_at"]}


def submissions(workdir: Workdir, server: str | None, token: str | None,
                competition: str | None) -> dict:
    """The team's own submissions with their public scores."""
    found = Competition.find(workdir, competition)
    url, token = find_server(server, found), find_token(token)
    return _answer(_request("GET", f"{url}/api/submissions", token), 200,
                   schemas.TeamSubmissions)


def select_final(workdir: Workdir, submission_id: int, final: bool, server: str | None,
                 token: str | None, competition: str | None) -> dict:
    """Select (or unselect) one of the team's submissions for the private leaderboard."""
    found = Competition.find(workdir, competition)
    url, token = find_server(server, found), find_token(token)
    response = _request("PUT", f"{url}/api/submissions/{submission_id}/final", token,
                        json={"final": final})
    body = _answer(response, 200, schemas.SubmissionView, names_a_submission=True)
    return {"id": body["id"], "final": body["final"], "score": body["score"]}
