import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from eval.answers import load_answers
from eval.metrics import bootstrap_f1, f1_micro_macro, score
from eval.scoring import score_submission


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn_on_random_data(seed):
    from sklearn.metrics import (accuracy_score, average_precision_score,
                                 precision_recall_fscore_support, roc_auc_score)
    rng = np.random.default_rng(seed)
    truth = (rng.random((300, 7)) < 0.3).astype(np.uint8)
    truth[:, 6] = 0                                  # a genre absent from the truth
    truth[:5] = 0                                    # films without any genre
    scores = rng.random((300, 7)).round(1 + seed)    # tied scores
    predicted = (scores >= 0.6).astype(np.uint8)
    predicted[5:9] = 0                               # films without any prediction
    result = score(truth, predicted, [str(j) for j in range(7)], scores)
    for average in ("micro", "macro", "weighted", "samples"):
        expected = precision_recall_fscore_support(
            truth, predicted, average=average, zero_division=0,
            labels=np.arange(6) if average == "macro" else None)[:3]
        assert [result[f"{m}_{average}"] for m in ("precision", "recall", "f1")] == \
            pytest.approx(list(expected)), average
    per_genre = precision_recall_fscore_support(truth, predicted, zero_division=0)
    assert [g["f1"] for g in result["per_genre"]] == pytest.approx(list(per_genre[2]))
    assert result["accuracy"] == pytest.approx((truth == predicted).mean())
    assert result["subset_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert result["ap_macro"] == pytest.approx(
        average_precision_score(truth[:, :6], scores[:, :6], average="macro"))
    assert result["roc_auc_macro"] == pytest.approx(
        roc_auc_score(truth[:, :6], scores[:, :6], average="macro"))


def test_macro_average_skips_genres_absent_from_the_truth():
    truth = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.uint8)
    result = score(truth, truth.copy(), ["a", "b"])
    assert result["f1_macro"] == 1.0 and result["macro_genres"] == 1
    assert result["f1_micro"] == pytest.approx(f1_score(truth, truth, average="micro"))


@pytest.mark.parametrize("truth_rate", [0.3, 0.0])
def test_training_f1_follows_the_harness_rule(truth_rate):
    rng = np.random.default_rng(1)
    truth = (rng.random((200, 6)) < truth_rate).astype(np.uint8)
    truth[:, 2] = 0                               # a genre absent from the truth
    predicted = (rng.random((200, 6)) < 0.3).astype(np.uint8)
    result = score(truth, predicted, [str(j) for j in range(6)])
    micro, macro = f1_micro_macro(truth, predicted)
    assert micro == pytest.approx(result["f1_micro"]) and macro == pytest.approx(result["f1_macro"])


def test_bootstrap_resamples_match_scikit_learn_with_the_same_weights():
    from eval.metrics import bootstrap_weights
    rng = np.random.default_rng(1)
    truth = (rng.random((80, 5)) < 0.3).astype(np.uint8)
    truth[:, 4] = 0     # a genre with no positives: zero_division applies
    predicted = (rng.random((80, 5)) < 0.3).astype(np.uint8)
    draws = bootstrap_f1(truth, [predicted], resamples=5, seed=3)[0]
    weights = next(bootstrap_weights(80, 5, seed=3))
    for r in range(5):
        for average in ("micro", "macro"):
            expected = f1_score(truth, predicted, average=average, sample_weight=weights[r],
                                zero_division=0, labels=[0, 1, 2, 3] if average == "macro"
                                else None)
            assert draws[average][r] == pytest.approx(expected)


@pytest.fixture
def key(competition):
    return load_answers(competition.folder / "private" / "answers.csv")


def answers_as_submission(key, path, transform=lambda m: m):
    frame = pd.DataFrame(transform(key.labels).astype(float), columns=key.genres)
    frame.insert(0, "id", key.ids)
    frame.to_csv(path, index=False)
    return path


def test_perfect_submission_scores_one_and_inverted_scores_zero(key, tmp_path):
    perfect = score_submission(answers_as_submission(key, tmp_path / "p.csv"), key,
                               reveal_private=True, resamples=50)
    for part in ("public", "private"):
        assert perfect[part]["f1_micro"] == perfect[part]["f1_macro"] == 1.0
        assert perfect[part]["accuracy"] == perfect[part]["subset_accuracy"] == 1.0
        assert perfect[part]["beats_references"]
    inverted = score_submission(answers_as_submission(key, tmp_path / "i.csv", lambda m: 1 - m),
                                key, resamples=50)
    assert inverted["public"]["f1_micro"] == inverted["public"]["accuracy"] == 0.0
    assert not inverted["public"]["beats_references"]


def test_sample_submission_scores_and_is_flagged(key, competition):
    result = score_submission(competition.public / "sample_submission.csv", key, resamples=50)
    assert result["kind"] == "probabilities" and "private" not in result
    assert not result["public"]["beats_references"]
    assert result["public"]["ap_macro"] is not None


def test_private_part_shown_when_asked_or_closed(key, competition, tmp_path, capsys):
    from eval.cli import main
    sample = str(competition.public / "sample_submission.csv")
    assert main(["score", sample, "--answers", str(competition.folder / "private" / "answers.csv"),
                 "--json", "--bootstrap", "20"]) == 0
    assert "private" not in json.loads(capsys.readouterr().out)
    (competition.folder / "CLOSED").write_text("closed\n")
    try:
        assert main(["score", sample, "--answers",
                     str(competition.folder / "private" / "answers.csv"), "--json",
                     "--bootstrap", "20"]) == 0
        assert "private" in json.loads(capsys.readouterr().out)
    finally:
        (competition.folder / "CLOSED").unlink()


def test_problems_quote_the_file_verbatim_not_as_console_markup(competition, tmp_path, capsys):
    """A header such as /etc/passwd's "root:x:0" must not come back as an emoji or a style."""
    from eval.cli import main
    bad = tmp_path / "bad.csv"
    bad.write_text("root:x:0:0,[bold]Drama[/bold],:smile:\ntt01,1,1\n")
    assert main(["score", str(bad), "--answers",
                 str(competition.folder / "private" / "answers.csv")]) == 2
    err = capsys.readouterr().err
    assert "root:x:0:0, [bold]Drama[/bold], :smile:" in err, err


def test_problems_show_invisible_characters_and_never_pass_on_terminal_codes(competition,
                                                                             tmp_path, capsys):
    """A header or an id holding escape sequences or zero-width characters is quoted with
    them written out, so the message says what is wrong and cannot drive the terminal."""
    from eval.cli import main
    bad = tmp_path / "bad.csv"
    bad.write_text("i\x1b[2Jd\u200b,Drama\x07\n", encoding="utf-8")
    assert main(["score", str(bad), "--answers",
                 str(competition.folder / "private" / "answers.csv")]) == 2
    err = capsys.readouterr().err
    assert "i\\x1b[2Jd\\u200b, Drama\\x07 (2 in all)" in err, err
    assert not {"\x1b", "\x07", "\u200b"} & set(err)
    ids = tmp_path / "ids.csv"
    header = (competition.public / "sample_submission.csv").read_text().splitlines()[0]
    ids.write_text(f"{header}\n\x1b]0;title\x07{',0' * header.count(',')}\n")
    assert main(["score", str(ids), "--answers",
                 str(competition.folder / "private" / "answers.csv")]) == 2
    err = capsys.readouterr().err
    assert "ids not in the test set: \\x1b]0;title\\x07 (1 in all)" in err, err
    assert "\x1b" not in err


def test_rules_print_an_upload_limit_as_a_whole_number(capsys):
    from eval.rules import Rules
    from kit.console import console, table
    console.print(table("rules", ["rule", "value"], Rules().as_dict().items()))
    out = capsys.readouterr().err
    assert "max_upload_mb" in out and " 50 " in out and "50.0000" not in out
    console.print(table("scores", ["metric", "value"], [("f1_macro", 0.5), ("loss", 0.0)]))
    out = capsys.readouterr().err
    assert "0.5000" in out and "0.0000" in out           # scores keep four places
    console.print(table("speed", ["item", "value"], [("posters_per_second", 2110.347)]))
    out = capsys.readouterr().err
    assert "2110.3" in out and "2110.347" not in out     # a rate to one place


def test_paired_comparison_against_another_submission(key, competition, tmp_path):
    perfect = answers_as_submission(key, tmp_path / "p.csv")
    result = score_submission(perfect, key, resamples=200,
                              against=competition.public / "sample_submission.csv")
    low, high = result["public"]["against"]["macro"]["interval"]
    assert result["public"]["against"]["macro"]["difference"] > 0 and 0 < low <= high


def test_invalid_submission_exits_2_with_every_problem(competition, tmp_path, capsys):
    from eval.cli import main
    bad = tmp_path / "bad.csv"
    bad.write_text("id,Nope\nzz,7\n")
    code = main(["score", str(bad), "--answers", str(competition.folder / "private" /
                                                      "answers.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown genre columns: Nope" in err


def test_leaderboard_ranks_lists_invalid_and_escapes_html(key, competition, tmp_path):
    from eval.leaderboard import build_leaderboard, submissions_in
    folder = tmp_path / "subs"
    folder.mkdir()
    answers_as_submission(key, folder / "perfect.csv")
    (folder / "prior.csv").write_bytes((competition.public / "sample_submission.csv").read_bytes())
    (folder / "<img src=x onerror=alert(1)>.csv").write_text("id,Drama\n1,0.5\n")
    long_name = "c" * 150 + ".csv"
    (folder / long_name).write_bytes((folder / "prior.csv").read_bytes())
    board = build_leaderboard(submissions_in(folder), key, tmp_path / "board", resamples=20)
    assert board["entries"][0]["name"] == "perfect.csv"
    assert [bad["name"] for bad in board["invalid"]] == ["<img src=x onerror=alert(1)>.csv"]
    names = [e["name"] for e in board["entries"]]
    assert "(reference) all-genres" in names and "prior.csv" in names
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.csv" in page
    assert page.count("data:image/png;base64,") == 3
    assert "<td class=name>perfect.csv</td>" in page and ".name{text-align:left;" in page
    assert "perfect.csv" in (tmp_path / "board" / "leaderboard.md").read_text()
    # The table keeps a long name whole (wrapping anywhere); the figures' axes shorten it, so
    # the plot is not squeezed beside a label twice its width.
    assert f"<td class=name>{long_name}</td>" in page and "overflow-wrap:anywhere" in page
    with Image.open(tmp_path / "board" / "metrics.png") as figure:
        assert figure.width < 1400, figure.size


def test_long_labels_are_cut_in_the_middle_keeping_both_ends():
    from kit.plots import short_label
    assert short_label("perfect.csv") == "perfect.csv"
    cut = short_label("c" * 150 + "-final.csv")
    assert len(cut) == 40 and cut.startswith("c" * 19 + "…") and cut.endswith("-final.csv")


def test_leaderboard_shows_private_scores_only_when_asked_or_closed(key, competition, tmp_path):
    from eval.answers import load_answers
    from eval.leaderboard import build_leaderboard
    path = tmp_path / "prior.csv"
    path.write_bytes((competition.public / "sample_submission.csv").read_bytes())
    hidden = build_leaderboard([path], key, tmp_path / "hidden", resamples=0)
    assert not hidden["private_shown"] and all("private" not in e for e in hidden["entries"])
    assert "Private part" not in (tmp_path / "hidden" / "leaderboard.md").read_text()
    asked = build_leaderboard([path], key, tmp_path / "asked", resamples=0, reveal_private=True)
    entry = lambda board: next(e for e in board["entries"] if e["name"] == "prior.csv")
    assert "private" in entry(asked)
    (competition.folder / "CLOSED").write_text("closed\n")
    try:
        closed = build_leaderboard([path], load_answers(competition.folder / "private" /
                                                        "answers.csv"), tmp_path / "closed",
                                   resamples=0)
        assert closed["private_shown"] and "private" in entry(closed)
    finally:
        (competition.folder / "CLOSED").unlink()


def test_closed_leaderboard_ranks_by_the_private_part(key, competition, tmp_path):
    """A submission that learned the public labels by probing leads the public board and must
    not lead once the competition is closed."""
    from eval.answers import load_answers
    from eval.leaderboard import build_leaderboard
    public = key.usage == "Public"
    prober = key.labels.copy()
    prober[~public] = 1 - prober[~public]            # perfect on public, inverted on private
    honest = key.labels.copy()
    honest[:, 0] = 1 - honest[:, 0]                  # one genre wrong everywhere
    paths = [answers_as_submission(key, tmp_path / "prober.csv", lambda m: prober),
             answers_as_submission(key, tmp_path / "honest.csv", lambda m: honest)]
    open_board = build_leaderboard(paths, key, tmp_path / "open", resamples=50)
    first = next(e for e in open_board["entries"] if e["rank"] == 1)
    assert open_board["ranked_by"] == "public" and first["name"] == "prober.csv"
    (competition.folder / "CLOSED").write_text("closed\n")
    try:
        closed = build_leaderboard(paths, load_answers(competition.answers), tmp_path / "closed",
                                   resamples=50)
    finally:
        (competition.folder / "CLOSED").unlink()
    ranks = {e["name"]: (e["rank"], e["public_rank"]) for e in closed["entries"]}
    assert closed["ranked_by"] == "private"
    assert ranks["honest.csv"][0] < ranks["prober.csv"][0]
    assert ranks["prober.csv"][1] == 1
    report = (tmp_path / "closed" / "leaderboard.md").read_text()
    assert "Ranked by the **private** part" in report


def test_leaderboard_survives_hostile_files_and_names_and_leaks_nothing(key, competition,
                                                                      tmp_path):
    """One bad file never takes the board down; a link out of the folder is not read; names and
    problems are inert in the Markdown, the HTML and the console."""
    import os
    from eval.leaderboard import build_leaderboard, submissions_in
    folder = tmp_path / "subs"
    folder.mkdir()
    good = answers_as_submission(key, folder / "good.csv")
    (folder / "$\\foo$ <img src=x> [a](b) | x.csv").write_bytes(good.read_bytes())
    (folder / "badheader.csv").write_text(" id ,\u00a0Drama,\"Comedy\"\n1,0,0\n")
    os.symlink("/etc/passwd", folder / "secret.csv")
    (folder / os.fsdecode(b"latin\xe9.csv")).write_bytes(good.read_bytes())
    (folder / "folder.csv").mkdir()
    board = build_leaderboard(submissions_in(folder), key, tmp_path / "out", resamples=0)
    scored = {e["name"] for e in board["entries"] if not e["reference"]}
    assert {"good.csv", "$\\foo$ <img src=x> [a](b) | x.csv", "latin\\xe9.csv"} <= scored
    refused = {bad["name"]: bad["problems"] for bad in board["invalid"]}
    assert "not read" in refused["secret.csv"][0] and "badheader.csv" in refused
    assert refused["folder.csv"] == [f"submission file {folder / 'folder.csv'} is a folder"]
    everything = "".join((tmp_path / "out" / f).read_text() for f in
                         ("leaderboard.md", "leaderboard.html", "leaderboard.json"))
    assert "root:" not in everything
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    import re
    assert not re.search(r"(?<!\\)<img", markdown) and "[a](b)" not in markdown
    assert "<img src=x>" not in (tmp_path / "out" / "leaderboard.html").read_text()
