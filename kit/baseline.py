"""`kit baseline` (`make baseline`): data -> prepare -> split -> train -> predict -> score."""
from __future__ import annotations

from pathlib import Path

from kit.competition import Competition
from kit.console import console
from kit.files import write_json
from kit.prepare import prepare_dataset
from kit.splits import SplitOptions, make_competition
from kit.synth import synthesize
from kit.train.config import TrainConfig, config_file
from kit.train.run import train
from kit.workdir import Workdir

DEFAULT_SYNTHETIC_FILMS = 3000


def run_baseline(workdir: Workdir, baseline: str = "lenet", data: str | None = None,
                 films: int = DEFAULT_SYNTHETIC_FILMS, seed: int = 0,
                 submissions: str = "submissions", epochs: int | None = None) -> dict:
    """Run the whole baseline on ``data`` (default: the embedded synthetic posters)."""
    from eval.answers import load_answers
    from eval.cli import print_score
    from eval.scoring import draw_grid, score_submission
    from kit.predict import predict

    config = TrainConfig.from_file(config_file(baseline))
    if epochs is not None:
        config = config.updated({"epochs": epochs})
    if data is None:
        data_dir = workdir.root / "data" / "synthetic"
        if not (data_dir / "genres.csv").exists():
            console.rule("synthesising the default data")
            synthesize(data_dir, films, seed, force=True)   # the baseline owns this folder
        data = str(data_dir)
    console.rule(f"preparing {data}")
    prepared = prepare_dataset(data, workdir)
    console.rule("freezing the competition")
    competition = make_competition(workdir, prepared["dataset"], SplitOptions(seed=seed))
    name = f"{Path(baseline).stem}-{competition['competition']}"
    console.rule(f"training {name}")
    trained = train(config, workdir, name, competition["competition"], resume=True)
    console.rule("predicting the test set")
    submission = predict(workdir, name, submissions)
    console.rule("scoring on the natural test distribution")
    key = load_answers(Competition.find(workdir, competition["competition"]).answers)
    result = score_submission(submission["submission"], key)
    score_path = Path(submission["submission"]).with_suffix(".score.json")
    write_json(score_path, result)
    grid = draw_grid(Path(submission["submission"]).with_suffix(".posters.png"),
                     submission["submission"], key)
    print_score(result)
    public = result["public"]
    return {"baseline": Path(baseline).stem, "dataset": prepared["dataset"],
            "competition": competition["competition"], "run": name,
            "epochs_run": trained["epochs_run"], "submission": submission["submission"],
            "score": str(score_path), "poster_grid": str(grid),
            "public_f1_micro": public["f1_micro"], "public_f1_macro": public["f1_macro"],
            "public_accuracy": public["accuracy"],
            "beats_references": public["beats_references"]}
