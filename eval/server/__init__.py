"""The grading server: the organiser holds the answer key; participants submit over HTTP.

``database`` (schema, sessions), ``tokens`` (participants and the admin token), ``grader``
(scoring in a bounded worker pool with the harness's own ``score_submission``), ``board`` (public
and private leaderboards), ``api`` (JSON routes), ``web`` (pages), ``app`` (the FastAPI app).
"""
