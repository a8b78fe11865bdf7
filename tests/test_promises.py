"""Promises of every command: shared files readable, the answer key private, and any argument
value ends in a result or one clear message (exit code 0 or 2), never a traceback."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.errors import KitError
from kit.files import shared_mode


def test_shared_artefacts_follow_the_umask_and_the_answer_key_is_owner_only(competition):
    for path in competition.public.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == shared_mode(), path
    assert stat.S_IMODE(competition.answers.stat().st_mode) == 0o600
    assert stat.S_IMODE(competition.answers.parent.stat().st_mode) == 0o700


def test_the_training_prior_never_comes_from_the_test_labels(competition, tmp_path):
    from eval.answers import load_answers
    copy = tmp_path / competition.name
    shutil.copytree(competition.folder, copy)
    (copy / "public" / "train.csv").unlink()
    with pytest.raises(KitError, match="need the training labels"):
        load_answers(copy / "private" / "answers.csv")


def run(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_file_system_errors_are_one_clear_message(workdir, competition, tmp_path):
    sample = str(competition.public / "sample_submission.csv")
    cases = [("eval", "score", sample, "--workdir", str(workdir), "--out", "/proc/version"),
             ("kit", "report", "--workdir", str(workdir), "--dataset", "nope"),
             ("kit", "synth", "--out", "/proc/kit-synth", "--n", "5"),
             ("kit", "export", "--workdir", str(workdir), "--out", "/proc/kit.tar.gz")]
    for argv in cases:
        done = run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "Traceback" not in done.stderr and "error" in done.stderr
        asked = next((a for a in argv if a.startswith("/proc/")), None)
        if asked:                                   # named as asked, not by a temporary's name
            assert f"cannot use {asked}:" in done.stderr, done.stderr


def test_a_named_pipe_given_as_an_input_file_is_refused_at_once(workdir, competition, tmp_path):
    """`kit train --config` on a FIFO waited for a writer for ever; the bundle, the answer key
    and the label file said "does not exist" of it. (Each run is bounded by run's timeout.)"""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    sample = str(competition.public / "sample_submission.csv")
    cases = {("kit", "train", "--workdir", str(workdir), "--config", str(pipe)): "config file",
             ("kit", "join", str(pipe), "--workdir", str(tmp_path / "joined")): "bundle",
             ("eval", "score", sample, "--workdir", str(workdir), "--answers", str(pipe)):
                 "answer key",
             ("kit", "prepare", str(tmp_path), "--labels", str(pipe), "--workdir",
              str(tmp_path / "w")): "label file",
             ("eval", "score", str(pipe), "--workdir", str(workdir)): "submission file"}
    for argv, what in cases.items():
        done = run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert f"{what} {pipe} is not a regular file (a pipe or a device)" in done.stderr, \
            done.stderr


def test_an_error_shows_control_characters_it_quotes_as_escapes(workdir):
    """A path holding ESC was printed raw in the error naming it, so a file name could drive
    the terminal (clear it, recolour what follows)."""
    hostile = "x\x1b[2J\x1b[31m.csv"
    for argv in (("kit", "train", "--config", hostile), ("kit", "prepare", hostile),
                 ("eval", "score", hostile, "--workdir", str(workdir))):
        done = run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "\x1b" not in done.stderr and "x\\x1b[2J\\x1b[31m.csv" in done.stderr, done.stderr


def test_a_finished_command_shows_control_characters_it_quotes_as_escapes(workdir,
                                                                          competition, tmp_path):
    """`eval leaderboard --out` printed the folder it wrote raw: every string the console
    prints is shown inert, not only the errors."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(competition.public / "sample_submission.csv", folder / "a.csv")
    out = "board\x1b[2J\x1b[31m"
    done = run("eval", "leaderboard", str(folder), "--workdir", str(workdir), "--out", out,
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / out / "leaderboard.html").is_file()
    assert "\x1b" not in done.stderr and "board\\x1b[2J\\x1b[31m/leaderboard.md" in done.stderr


def test_an_answer_key_that_is_no_csv_is_one_clear_message(workdir, competition, tmp_path):
    """An empty or UTF-16 --answers file ended in pandas' traceback."""
    sample = str(competition.public / "sample_submission.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "utf16.csv").write_text("id,genres,usage\n1,Drama,public\n", encoding="utf-16")
    for name, message in (("empty.csv", "the file is empty"), ("utf16.csv", "not UTF-8 text")):
        done = run("eval", "score", sample, "--workdir", str(workdir), "--answers",
                   str(tmp_path / name))
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_an_empty_or_unusable_name_is_refused_where_it_is_parsed(workdir):
    """`--name ''` once fell back to the default name and trained or wrote under it."""
    cases = [("kit", "train", "--name", ""), ("kit", "predict", "--run", "lenet", "--name", ""),
             ("kit", "prepare", str(workdir), "--name", "a/b"), ("kit", "use", ""),
             ("kit", "thresholds", "--run", "../runs"), ("kit", "export", "--competition", " "),
             ("eval", "participants", "add", "ann", "--team", ""),
             ("eval", "score", "x.csv", "--competition", "")]
    for argv in cases:
        done = run(*argv, "--workdir", str(workdir))
        assert done.returncode == 2, (argv, done.stderr)
        assert "is not a usable name" in done.stderr and "Traceback" not in done.stderr, argv


def test_an_empty_path_is_refused_where_it_is_parsed(workdir):
    """`--submissions ''` once wrote the baseline's submission into the current folder, and
    `--workdir ''` made it the work folder: an unset shell variable should not mean "here"."""
    cases = [("kit", "--workdir", " ", "status"), ("kit", "synth", "--out", ""),
             ("kit", "predict", "--run", "lenet", "--out", ""), ("kit", "prepare", ""),
             ("kit", "baseline", "--submissions", ""), ("kit", "join", ""),
             ("eval", "score", ""), ("eval", "leaderboard", "", "--out", "r")]
    for argv in cases:
        done = run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "an empty path" in done.stderr and "Traceback" not in done.stderr, argv
    a_file = str(workdir / "competitions" / "CURRENT")     # once "no prepared dataset in it"
    for argv in (("kit", "split", "--workdir", a_file), ("eval", "rules", "--workdir", a_file),
                 ("kit", "predict", "--run", "lenet", "--out", a_file)):    # once "File exists"
        done = run(*argv)
        assert done.returncode == 2 and "is a file, not a folder" in done.stderr, done.stderr


def test_json_output_is_the_json_alone(workdir, tmp_path):
    """`rules --json` and `participants ... --json` printed their tables to stderr as well."""
    db = f"sqlite:///{tmp_path / 'grading.db'}"
    for argv in (("rules",), ("participants", "add", "ann", "--db", db),
                 ("participants", "list", "--db", db)):
        done = run("eval", *argv, "--workdir", str(workdir), "--json")
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout), dict)
        assert "┃" not in done.stderr and "token" not in done.stderr, (argv, done.stderr)


def test_participant_options_may_come_anywhere(workdir, tmp_path):
    """`participants add --team red ann` answered "unrecognized arguments: ann": the name was
    an optional positional that argparse had already passed over."""
    db = f"sqlite:///{tmp_path / 'grading.db'}"
    for argv in (("participants", "add", "--team", "red", "--db", db, "ann"),
                 ("participants", "--db", db, "add", "bob", "--team", "red"),
                 ("participants", "revoke", "--db", db, "ann")):
        done = run("eval", *argv, "--workdir", str(workdir))
        assert done.returncode == 0, (argv, done.stderr)
    listed = json.loads(run("eval", "participants", "list", "--db", db, "--json", "--workdir",
                            str(workdir)).stdout)["participants"]
    assert {(r["participant"], r["team"], r["revoked"]) for r in listed} == {
        ("ann", "red", True), ("bob", "red", False)}
    done = run("eval", "participants", "add", "--db", db, "--workdir", str(workdir))
    assert done.returncode == 2 and "required: name" in done.stderr, done.stderr



def test_a_database_in_a_missing_folder_is_refused_not_made(workdir, tmp_path):
    """`serve --db sqlite:////srv/typo/grading.db` made the folders and served an empty
    competition: no participant, no submission."""
    missing = tmp_path / "typo" / "grading.db"
    for argv in (("participants", "list"), ("serve", "--port", "1")):
        done = run("eval", *argv, "--db", f"sqlite:///{missing}", "--workdir", str(workdir))
        assert done.returncode == 2 and "create it first" in done.stderr, done.stderr
        assert not missing.parent.exists()
    server_folder = next((workdir / "competitions").glob("*/server"), None)
    assert server_folder is None        # the default database's folder is made when used
    done = run("eval", "participants", "add", "ann", "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr
    assert next((workdir / "competitions").glob("*/server/grading.db")).is_file()

VALUES = st.sampled_from(["-1", "0", "1", "99999999999999999999", "nan", "1e400", "", "x",
                          "/proc/version", "/", "/nonexistent/x", "../..", "é\u2028", "%s",
                          "0001-01-01T00:00:00+14:00", "http://[::1"])
COMMANDS = {
    ("kit", "synth"): ["--out", "--n", "--seed", "--workers"],
    ("kit", "split"): ["--sample", "--test", "--valid", "--public", "--min-support", "--seed"],
    ("kit", "train"): ["--lr", "--epochs", "--batch-size", "--dropout", "--folds", "--views",
                       "--config", "--model", "--weight-cap", "--short-side", "--seed",
                       "--repeats", "--threshold-grid"],
    ("kit", "predict"): ["--run", "--out", "--name", "--part"],
    ("kit", "audit"): ["--strategy", "--min-count", "--target-size", "--weight-cap"],
    ("kit", "submit"): ["--server", "--token", "--message"],
    ("eval", "score"): ["--threshold", "--bootstrap", "--answers", "--against"],
    ("eval", "rules"): ["--daily-limit", "--final", "--deadline", "--metric", "--max-upload-mb"],
}


@settings(max_examples=15, deadline=None)
@given(command=st.sampled_from(sorted(COMMANDS)), picks=st.data())
def test_any_argument_value_ends_in_a_result_or_one_clear_message(workdir, tmp_path_factory,
                                                                   command, picks):
    option = picks.draw(st.sampled_from(COMMANDS[command]))
    value = picks.draw(VALUES)
    scratch = tmp_path_factory.mktemp("fuzz")
    argv = [*command]
    if command == ("kit", "submit") or command == ("eval", "score"):
        argv.append(str(scratch / "missing.csv"))
    if command == ("kit", "synth") and option != "--out":
        argv += ["--out", str(scratch / "synth"), "--n", "3"]
    if command == ("kit", "train"):
        argv += ["--epochs", "1"] if option != "--epochs" else []
    argv += ["--workdir", str(workdir if command[1] != "split" else scratch), option, value]
    done = run(*argv, cwd=scratch)        # relative values ("0", "x") land in the scratch folder
    assert done.returncode in (0, 2), (argv, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, (argv, done.stderr[-2000:])


@pytest.mark.parametrize("deadline", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-01:00"])
def test_a_deadline_beyond_the_calendar_in_utc_is_one_message(deadline):
    from eval.rules import Rules            # once an OverflowError traceback
    with pytest.raises(KitError, match="out of range in UTC"):
        Rules(deadline=deadline)
    assert Rules(deadline="2026-12-31T23:59:00-23:59").deadline == "2027-01-01T23:58:00Z"


def test_a_deadline_already_past_is_refused_not_a_silent_close(workdir):
    """`rules --deadline 1900-01-01T00:00:00Z`, a typo for 2026, once closed the competition at
    once and showed the private leaderboard; `--deadline X --no-deadline` kept X."""
    from eval.rules import Rules, read_rules, write_rules
    from kit.competition import Competition
    from kit.workdir import Workdir
    rules = ("eval", "rules", "--workdir", str(workdir))
    past = run(*rules, "--deadline", "1900-01-01T00:00:00Z")
    assert past.returncode == 2 and "has already passed" in past.stderr, past.stderr
    both = run(*rules, "--deadline", "2999-01-01T00:00:00Z", "--no-deadline")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr, both.stderr
    path = Competition.find(Workdir(workdir)).rules_path
    assert read_rules(path).deadline is None
    write_rules(path, Rules(deadline="2020-01-01T00:00:00Z"))     # a deadline that has passed
    assert run(*rules, "--metric", "f1_micro").returncode == 0    # other rules still change
    assert read_rules(path) == Rules(deadline="2020-01-01T00:00:00Z", metric="f1_micro")


def test_a_rules_file_that_is_no_object_or_holds_unknown_rules_is_one_message(tmp_path):
    from eval.rules import read_rules
    path = tmp_path / "rules.json"
    for text, said in (("[1, 2, 3]", "are not a JSON object"),    # once 'unknown fields: [1, 2,'
                       ('{"daily_limit": 3, "x": 1}', "hold unknown fields: x"),
                       ("{", "cannot read the rules")):
        path.write_text(text)
        with pytest.raises(KitError, match=said):
            read_rules(path)


def test_the_current_competition_is_explicit(organiser, capsys):
    from tests.conftest import run_cli
    from kit.competition import Competition
    from kit.workdir import Workdir
    work = ["--workdir", str(organiser)]
    first = Competition.find(Workdir(organiser)).name
    code, second, _ = run_cli(capsys, "split", *work, "--min-support", "5", "--seed", "9")
    assert code == 0 and second["competition"] != first
    assert Competition.find(Workdir(organiser)).name == second["competition"]   # split sets it
    code, _, err = run_cli(capsys, "use", first, *work)
    assert code == 0 and Competition.find(Workdir(organiser)).name == first
    (organiser / "competitions" / "CLOSED").touch()       # not a competition's own marker
    (organiser / "competitions" / "CURRENT").unlink()
    with pytest.raises(KitError, match="none is current: choose one with `kit use NAME`"):
        Competition.find(Workdir(organiser))
    code, _, err = run_cli(capsys, "use", "nope", *work)
    assert code == 2 and "no competition 'nope'" in err


@pytest.mark.parametrize("option, value, message", [
    ("--final", "0", "rule final_limit (--final) must be a whole number from 1 to 10,000, got 0"),
    ("--invalid-limit", "10001", "rule invalid_daily_limit (--invalid-limit) must be"),
    ("--max-upload-mb", "0", "rule max_upload_mb (--max-upload-mb) must be between 0.001")])
def test_a_refused_rule_names_the_option_that_sets_it(organiser, capsys, option, value, message):
    from eval.cli import main
    assert main(["rules", "--workdir", str(organiser), option, value]) == 2
    assert message in capsys.readouterr().err


def test_genre_names_that_look_like_markup_or_math_are_data(tmp_path, capsys):
    """`kit prepare`, `kit split`, `kit audit` and their tables, notes and figures take any genre
    name (a dropped genre named `[/y] rare` ended kit split in rich's MarkupError)."""
    import pandas as pd
    from tests.conftest import jpeg_bytes, run_cli
    data = tmp_path / "data"
    (data / "posters").mkdir(parents=True)
    names = ["$\\foo$ docs", "[/x] action", ":smile: comedy", "<b>drama</b>"]
    rows = [(str(1000 + i), names[i % 4]) for i in range(40)]
    rows += [(str(2000 + i), "[/y] rare") for i in range(3)]     # dropped by kit split, named
    pd.DataFrame(rows, columns=["id", "genre"]).to_csv(data / "genres.csv", index=False)
    for film, _ in rows:
        (data / "posters" / f"{film}.jpg").write_bytes(jpeg_bytes())
    work = ["--workdir", str(tmp_path / "work")]
    code, prepared, err = run_cli(capsys, "prepare", str(data), *work, "--scheduler", "inline")
    assert code == 0, err
    code, split, err = run_cli(capsys, "split", *work, "--min-support", "5")
    assert code == 0, err
    assert split["genres"] == 4 and "[/x] action" in err
    assert "dropped genres with fewer than 5 films: [/y] rare (3)" in err
    code, _, err = run_cli(capsys, "audit", *work, "--strategy", "min-per-genre", "--min-count",
                           "30")
    assert code == 0 and "train: [/x] action has only" in err, err


@pytest.mark.parametrize("columns, whole", [
    (["rank", "submission", "f1_macro", "f1_micro", "f1_samples", "accuracy", "subset_accuracy",
      "ap_macro"], "submission"),                        # the leaderboard's table
    (["epoch", "train_loss", "valid_loss", "valid_f1_micro", "valid_f1_macro", "seconds",
      "images_per_second"], None),                       # a run's history
    (["item", "value"], None)])                          # every command's summary
def test_every_table_keeps_its_row_names_whole_at_80_columns(columns, whole):
    from rich.console import Console
    from kit.console import table
    names = ["class-weight@tuned.csv (tied with #1)", "asymmetric-loss@0.5.csv", "7"]
    key = columns.index(whole) if whole else 0
    rows = [[name if j == key else 0.123456 * (i + j) for j in range(len(columns))]
            for i, name in enumerate(names)]
    rows[1][-1] = "a long value " * 20
    screen = Console(width=80, record=True, file=open(os.devnull, "w"))
    screen.print(table("a title", columns, rows, whole=whole, width=80))
    text = screen.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert all(name in text for name in names)
    assert columns[1 if key == 0 else 0] in text            # the next column is never dropped


def kit_under_mount(setup: str, arguments: str) -> subprocess.CompletedProcess:
    """`python -m kit ARGUMENTS` in a private mount namespace after the shell lines ``setup``
    (a tiny tmpfs, a read-only bind mount); skipped where mounting is not allowed."""
    if subprocess.run(["unshare", "-m", "sh", "-c", setup], capture_output=True).returncode:
        pytest.skip("cannot mount in a private namespace here (needs root)")
    return subprocess.run(["unshare", "-m", "sh", "-c",
                           f"{setup} && exec {sys.executable} -m kit {arguments}"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mount, message", [
    ("mount -t tmpfs -o size=200k tmpfs {dir}", "No space left on device"),
    ("mount --bind {dir} {dir} && mount -o remount,ro,bind {dir}", "Read-only file system")])
def test_a_full_or_read_only_work_folder_is_one_clear_message(synthetic_dir, tmp_path, mount,
                                                              message):
    folder = tmp_path / "work"
    folder.mkdir()
    done = kit_under_mount(mount.format(dir=folder), f"prepare {synthetic_dir} --workdir "
                           f"{folder} --size 115x77")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot use ")
    assert message in done.stderr


def test_a_disk_that_fills_while_a_checkpoint_is_written_is_one_clear_message(workdir):
    """torch.save on a full disk raises a RuntimeError ('unexpected pos ...'): `kit train`
    ended in a traceback where every other write says 'No space left on device'."""
    runs = workdir / "runs"
    runs.mkdir(exist_ok=True)
    # 1 MB: a run's config.json fits, its first checkpoint does not
    done = kit_under_mount(f"mount -t tmpfs -o size=1m tmpfs {runs}",
                           f"train --config lenet --epochs 1 --name full --workdir {workdir}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot use ") and "No space left on device" in last, last
    assert ".pt" in last and ".tmp" not in last                 # the file asked for, named
