"""The API keeps the promises of its own OpenAPI document: requests generated from
`/api/openapi.json` (schemathesis), sent to a real server with a participant's token and then
the organiser's, get only documented statuses, bodies and headers, and never a 5xx."""
from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS

from tests.test_server import add, post, write_submission

# A file the schema allows can still be an invalid submission (422 by design), so generated
# "valid" requests need not succeed; every other check runs.
SKIPPED_CHECKS = {"positive_data_acceptance"}


def answers_as_documented(schema, token: str, examples: int) -> None:
    checks = [check for check in CHECKS.get_all() if check.__name__ not in SKIPPED_CHECKS]
    assert len(checks) > 5     # the OpenAPI checks are registered
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def answer(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

        answer()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_answer_is_the_one_the_schema_documents(serve, organiser, database_url, tmp_path):
    server = serve()
    token = add(organiser, database_url, "alice")
    scored = post(server, token, write_submission(organiser, tmp_path / "a.csv", flip=0.1))
    assert scored.status_code == 201
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    answers_as_documented(schema, token, examples=15)
    answers_as_documented(schema, server.admin_token, examples=15)
    assert httpx.get(f"{server.url}/api/health").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_request_the_api_cannot_read_is_one_sentence(serve, organiser, database_url,
                                                        tmp_path):
    server = serve()
    token = add(organiser, database_url, "bob")
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.put(f"{server.url}/api/submissions/99999999999/final", headers=headers,
                         json={"final": "perhaps"})
    body = response.json()
    assert response.status_code == 422
    assert body["detail"].startswith("submission_id: Input should be less than or equal to "
                                     "2147483647; final: Input should be a valid boolean"), body
    assert [e["loc"] for e in body["errors"]] == [["path", "submission_id"], ["body", "final"]]
    scored = post(server, token, write_submission(organiser, tmp_path / "b.csv", flip=0.1))
    number = scored.json()["id"]
    for careless in ({"final": 0}, {"finale": False}, {"final": "true"}):
        response = httpx.put(f"{server.url}/api/submissions/{number}/final", headers=headers,
                             json=careless)
        assert response.status_code == 422, (careless, response.text)
    mine = httpx.get(f"{server.url}/api/submissions/{number}", headers=headers).json()
    assert mine["final"] is False and "private_score" not in mine
    missing = httpx.post(f"{server.url}/api/submissions", headers=headers, data={"message": "x"})
    assert missing.status_code == 422 and missing.json()["detail"] == "file: Field required"
