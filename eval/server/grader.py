"""Scoring in a bounded pool of worker processes, by the very function `eval score` uses.

A slow file never blocks the server; a full queue is refused (503); a worker that dies takes
only its submissions with it (they end as failed, not counted) and the pool is started again.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache

from eval.answers import load_answers
from eval.scoring import score_submission, tied_with_best
from eval.submission import SubmissionError

SHOWN_METRICS = ("f1_macro", "f1_micro", "f1_samples", "f1_weighted", "accuracy",
                 "subset_accuracy", "precision_micro", "recall_micro", "precision_macro",
                 "recall_macro", "ap_macro", "roc_auc_macro", "f1_micro_interval",
                 "f1_macro_interval")


class QueueFull(Exception):
    """Every worker is busy and the queue is full."""


class GradingFailed(Exception):
    """The worker scoring a submission died or failed; the submission is not counted."""


def _follow_parent(parent: int) -> None:
    """Exit when the server process is gone (a SIGKILLed server must not leave workers)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


@lru_cache(maxsize=4)
def _answer_key(path: str, modified: float):
    return load_answers(path)


def _key(path: str):
    return _answer_key(path, os.path.getmtime(path))


def part_summary(part: dict) -> dict:
    """What a team sees of one part: headline metrics, intervals and per-genre F1 (no counts)."""
    shown = {name: part.get(name) for name in SHOWN_METRICS if part.get(name) is not None}
    shown["per_genre_f1"] = {g["genre"]: g["f1"] for g in part["per_genre"]}
    return shown


def grade(path: str, answers: str, resamples: int) -> dict:
    """Validate and score one stored file on both parts (runs in a worker process)."""
    key = _key(answers)
    try:
        result = score_submission(path, key, resamples=resamples, reveal_private=True)
    except SubmissionError as error:
        return {"status": "invalid", "problems": error.problems}
    return {"status": "scored", "kind": result["kind"],
            **{part: part_summary(result[part]) for part in ("public", "private")
               if part in result}}


def references(answers: str) -> dict:
    """Scores of the reference predictors on each part (runs in a worker process)."""
    key = _key(answers)
    return {usage.lower(): key.references(usage) for usage in ("Public", "Private")
            if len(key.part(usage))}


def ties(answers: str, paths: list[str], metric: str, resamples: int) -> list[bool]:
    """Which of the board's best submissions are tied with the leader (runs in a worker)."""
    return tied_with_best(_key(answers), paths, "Public", metric, resamples=resamples)


class Grader:
    """At most ``workers`` files scored at once and ``queue`` more waiting."""

    def __init__(self, answers: str, workers: int = 2, queue: int = 8, resamples: int = 1000):
        self.answers = answers
        self.workers = max(1, workers)
        self.limit = self.workers + max(0, queue)
        self.resamples = resamples
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """Worker processes started now, each with the answer key read, so that the first
        submissions do not wait for them."""
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_follow_parent, initargs=(os.getpid(),))
        for _ in range(self.workers):
            pool.submit(_key, self.answers)
        return pool

    async def run(self, function, *args):
        with self._lock:
            if self._in_flight >= self.limit:
                raise QueueFull()
            self._in_flight += 1
            pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(function, *args))
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            raise GradingFailed("the scoring worker stopped") from None
        except Exception as error:      # a bug or a resource error in the worker
            raise GradingFailed(f"scoring failed: {type(error).__name__}") from None
        finally:
            with self._lock:
                self._in_flight -= 1

    async def grade(self, path: str) -> dict:
        return await self.run(grade, path, self.answers, self.resamples)

    async def references(self) -> dict:
        return await self.run(references, self.answers)

    async def ties(self, paths: list[str], metric: str) -> list[bool]:
        return await self.run(ties, self.answers, paths, metric, self.resamples)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
