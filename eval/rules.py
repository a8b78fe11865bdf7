"""A competition's rules: limits, final selections, deadline, ranking metric, upload size.

Kept by the organiser in ``<competition>/rules.json`` (`python -m eval rules`), copied into the
participant bundle, served by ``GET /api/rules`` and enforced by the grading server.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kit.errors import KitError
from kit.files import write_json

# Metrics a competition may rank by: every one is higher-is-better and defined for every kind of
# submission (probabilities, decisions, labels).
RANKING_METRICS = ("f1_macro", "f1_micro", "f1_samples", "f1_weighted", "accuracy",
                   "subset_accuracy")


MAX_MESSAGE = 1000      # characters of the note a team sends beside a submission

# Each rule's `python -m eval rules` option, named beside the rule's own name in messages.
OPTIONS = {"daily_limit": "--daily-limit", "invalid_daily_limit": "--invalid-limit",
           "final_limit": "--final", "max_upload_mb": "--max-upload-mb"}


@dataclass(frozen=True)
class Rules:
    """What every team may do, and how the board ranks them."""
    daily_limit: int = 5            # scored submissions per team per UTC day
    invalid_daily_limit: int = 20   # invalid files per team per UTC day (not scored)
    final_limit: int = 2            # final selections per team
    deadline: str | None = None     # ISO 8601 in UTC, e.g. 2026-12-31T23:59:00Z
    metric: str = "f1_macro"
    max_upload_mb: float = 50.0

    def __post_init__(self):
        for name in ("daily_limit", "invalid_daily_limit", "final_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
                raise KitError(f"rule {name} ({OPTIONS[name]}) must be a whole number from 1 "
                               f"to 10,000, got {value!r}")
        if self.metric not in RANKING_METRICS:
            raise KitError(f"unknown ranking metric {self.metric!r}; choose one of "
                           f"{', '.join(RANKING_METRICS)}")
        size = self.max_upload_mb
        if isinstance(size, bool) or not isinstance(size, (int, float)) \
                or not 0.001 <= size <= 10_000:
            raise KitError(f"rule max_upload_mb ({OPTIONS['max_upload_mb']}) must be between "
                           f"0.001 and 10,000, got {size!r}")
        if self.deadline is not None:
            object.__setattr__(self, "deadline", iso_utc(parse_deadline(self.deadline)))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    def deadline_at(self) -> datetime | None:
        return parse_deadline(self.deadline) if self.deadline else None

    def past_deadline(self, now: datetime | None = None) -> bool:
        deadline = self.deadline_at()
        return deadline is not None and (now or utc_now()) >= deadline

    def replacing(self, current: "Rules", now: datetime | None = None) -> "Rules":
        """These rules, checked as the successor of ``current``: a deadline that is changed to
        a time already past is refused, as it would close the competition (and show the
        private leaderboard) the moment it is saved; closing at once is `python -m eval close`."""
        if self.deadline != current.deadline and self.past_deadline(now):
            raise KitError(f"deadline {self.deadline} has already passed: saving it would close "
                           "the competition and show the private leaderboard at once; give a "
                           "later time, or close the competition on purpose (python -m eval "
                           "close, or Close on the admin page)")
        return self

    def updated(self, changes: dict) -> "Rules":
        """These rules with ``changes`` (None values ignored) applied and checked."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)


def parse_deadline(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 text; KitError when it is not one."""
    try:
        moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise KitError(f"deadline {text!r} is not an ISO 8601 time such as "
                       "2026-12-31T23:59:00Z") from None
    if moment.tzinfo is None:
        raise KitError(f"deadline {text!r} has no time zone; end it with Z for UTC")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:                       # 0001-01-01T00:00:00+14:00 is before year 1
        raise KitError(f"deadline {text!r} is out of range in UTC") from None


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC to the second, e.g. 2026-12-31T23:59:00Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_reset(now: datetime | None = None) -> datetime:
    """When the daily limits reset: the next UTC midnight."""
    now = now or utc_now()
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def read_rules(path: str | Path) -> Rules:
    """The rules stored at ``path``, or the defaults when there is no such file."""
    path = Path(path)
    if not path.exists():
        return Rules()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KitError(f"cannot read the rules {path}: {error}") from None
    return rules_from(data, f"the rules {path}")


def rules_from(data, where: str) -> Rules:
    """Rules from JSON ``data`` (an object of rule names and values); KitError naming ``where``
    the data came from when it is no such object or a rule is unknown or out of range."""
    if not isinstance(data, dict):
        raise KitError(f"{where} are not a JSON object of rule names and values")
    unknown = sorted(set(data) - {f.name for f in fields(Rules)})
    if unknown:
        raise KitError(f"{where} hold unknown fields: {', '.join(map(str, unknown))}")
    return Rules(**data)


def write_rules(path: str | Path, rules: Rules) -> None:
    """Write ``rules`` to ``path`` as JSON, atomically."""
    write_json(path, rules.as_dict())
