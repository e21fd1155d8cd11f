"""The command line, in-process through ``harness.cli.main`` (plus a few real subprocesses for
exit codes): usage errors are one stderr line with exit code 2, runs print one summary line and
write a deterministic leaderboard, third-party ``--plugin`` files take part with no other change.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.api import HarnessError
from harness.cli import main
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^cells: (\d+) computed, (\d+) reused, (\d+) failed$")
KINDS = ("encoders", "adapters", "merges", "tasks", "metrics")
FAST = ["--profile", "smoke", "--device", "cpu"]

PLUGIN_HEADER = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness import hookimpl
from harness.api import Metric, MetricUndefined, Task
'''

THIRD_PARTY = '''
@dataclass(frozen=True)
class LastDigitEven(Task):
    """Whether the last element's last digit is even."""
    name: ClassVar[str] = "last-digit-even"
    classes: ClassVar[tuple] = ("odd", "even")

    def label(self, seq):
        return int(seq[-1] % 2 == 0) if seq else None

    def sample(self, n, rng):
        out = [tuple(rng.randrange(1000) for _ in range(3)) + (2 * rng.randrange(500) + i % 2,)
               for i in range(n)]
        rng.shuffle(out)
        return out


@dataclass(frozen=True)
class Spread(Metric):
    """Mean per-dimension standard deviation."""
    name: ClassVar[str] = "spread"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        return float(X.std(0).mean())


@hookimpl
def register_tasks(register):
    register(LastDigitEven)


@hookimpl
def register_metrics(register):
    register(Spread)
'''

# fails on two-class tasks only (parity), so progression (three classes) still computes
FAILING = '''
@dataclass(frozen=True)
class Flaky(Metric):
    """Raises on two-class tasks."""
    name: ClassVar[str] = "flaky"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        if len(np.unique(y)) == 2:
            raise RuntimeError("flaky metric exploded")
        return 1.0


@hookimpl
def register_metrics(register):
    register(Flaky)
'''

UNDEFINED = '''
@dataclass(frozen=True)
class Never(Metric):
    """Never defined."""
    name: ClassVar[str] = "never"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        raise MetricUndefined("why: never defined here")


@hookimpl
def register_metrics(register):
    register(Never)
'''


def write_plugin(tmp_path: Path, stem: str, body: str) -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(PLUGIN_HEADER + textwrap.dedent(body))
    return str(path)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert len(err) == 1, captured.err
    assert err[0].startswith("harness: error: ")
    assert "Traceback" not in captured.err
    return err[0]


def summary(stdout: str) -> tuple[int, int, int]:
    out = lines(stdout)
    assert len(out) == 1, stdout
    match = SUMMARY.match(out[0])
    assert match, out[0]
    computed, reused, failed = map(int, match.groups())
    return computed, reused, failed


# ------------------------------------------------------------------------------- plugins


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for kind in KINDS:
        assert isinstance(data[kind], list) and data[kind], kind
        for entry in data[kind]:
            assert {"name", "plugin", "params"} <= set(entry)
    assert len(data["tasks"]) >= 8
    assert {e["name"] for e in data["encoders"]} >= {"scratch"}
    knn = next(e for e in data["metrics"] if e["name"] == "knn-accuracy")
    assert {p["name"] for p in knn["params"]} >= {"k"}
    assert {e["name"] for e in data["merges"]} >= {
        "none", "soup", "greedy-soup", "slerp", "linear", "task-arithmetic", "ties", "dare",
        "model-stock"}
    slerp = next(e for e in data["merges"] if e["name"] == "slerp")
    assert {p["name"] for p in slerp["params"]} >= {"t", "between", "space", "schedule", "over"}
    # what each component declares about itself is listed
    assert (slerp["interpolates"], slerp["control"]) == ("t", "linear")
    lora = next(e for e in data["adapters"] if e["name"] == "lora")
    assert lora["kind"] == "LoRA" and lora["parameter_efficient"] is True
    by = {e["name"]: e for e in data["tasks"]}
    assert by["progression"]["compositional"] and not by["progression"]["trains_by_default"]
    assert not by["square"]["compositional"] and by["square"]["trains_by_default"]
    assert not by["fibonacci"]["trains_by_default"]
    assert by["parity"]["classes"] == ["even", "odd"]
    enc = {e["name"]: e for e in data["encoders"]}
    assert enc["scratch"]["from_scratch"] and enc["hf"]["family"] == "inferred"
    metrics = {e["name"]: e["higher_is_better"] for e in data["metrics"]}
    assert metrics["davies-bouldin"] is False and metrics["silhouette"] is True


def test_plugins_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for kind in KINDS:
        assert f"\n{kind}:\n" in out
    for name in ("scratch", "full", "parity", "silhouette"):
        assert f"  {name}" in out
    # each component's flags, so an author can see that one took effect
    after = {block.split(" ", 1)[0]: block for block in re.split(r"\n  (?=\S)", out)}
    assert "declares: from_scratch" in after["scratch"]
    assert "compositional" in after["progression"] and \
        "trains_by_default" not in after["progression"]
    assert "compositional" not in after["square"] and "2 classes" in after["square"]
    assert "trains_by_default" in after["square"]
    assert "kind=LoRA, parameter_efficient" in after["lora"]
    assert "in --all across tasks only" in after["ties"]


# -------------------------------------------------------------------------- usage errors


def test_unknown_encoder_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--encoder", "scratc", "--task", "parity"]) == 2
    line = one_error_line(capsys)
    assert "did you mean 'scratch'" in line
    assert main(["run", "--encoder", "nope"]) == 2
    assert "unknown encoder 'nope'" in one_error_line(capsys)


def harness_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    # the heavy built-ins (torch, scikit-learn) are disabled: they play no part in these errors
    env = {**os.environ, "HARNESS_DISABLE_PLUGINS": "scratch,adapters,merges,metrics"}
    env.pop("HARNESS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--encoder", "nope"], "unknown encoder 'nope'"),
    (["run", "--task", "parityy"], "did you mean 'parity'"),
    (["run", "--profile", "nope"], "--profile"),
])
def test_usage_error_subprocess(args: list[str], expected: str) -> None:
    proc = harness_subprocess(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("harness: error: ") and expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reader_that_leaves_early_is_no_traceback() -> None:
    """``harness plugins --json | true``: the pipe closes before the output is written."""
    proc = subprocess.run(f"{sys.executable} -m harness.cli plugins --json | true; "
                          "echo ${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() in {"0", "141"}  # 0 when the reader got it all first


def test_nothing_selected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "--all" in one_error_line(capsys)


@pytest.mark.parametrize(("args", "expected"), [
    (["--merge", "none:x=1"], "no parameter 'x'"),
    (["--metric", "knn-accuracy:k=abc"], "not a valid int"),
    (["--metric", "knn-accuracy:k=0"], "metric 'knn-accuracy'"),
    (["--task", "parity:k=1,k=2"], "given twice"),
    (["--seeds", "0"], "--seeds"),
])
def test_bad_run_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           args: list[str], expected: str) -> None:
    argv = ["run", "--encoder", "scratch", "--task", "parity", "--store",
            str(tmp_path / "store"), "--out", str(tmp_path / "out.md"), *args]
    assert main(argv) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "out.md").exists()


def test_bad_profile_is_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--encoder", "scratch", "--profile", "nope"])
    assert exc.value.code == 2
    line = one_error_line(capsys)
    assert "--profile" in line and "nope" in line


def test_unwritable_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--encoder", "scratch", "--task", "parity", *FAST,
                 "--store", str(blocker / "store"), "--out", str(tmp_path / "o.md")]) == 2
    line = one_error_line(capsys)
    assert "not writable" in line and str(blocker / "store") in line


def test_leaderboard_empty_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["leaderboard", "--store", str(empty), "--out", str(tmp_path / "o.md")]) == 2
    assert "no results store" in one_error_line(capsys)
    assert not (tmp_path / "o.md").exists()


def test_debug_reraises(capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HarnessError, match="did you mean 'scratch'"):
        main(["run", "--debug", "--encoder", "scratc"])
    with pytest.raises(HarnessError, match="nothing selected"):
        main(["--debug", "run"])
    monkeypatch.setenv("HARNESS_DEBUG", "1")
    with pytest.raises(HarnessError):
        main(["run"])


@pytest.mark.parametrize("value", ["", " ", "0", "false", "FALSE", "no", "No", "off", "OFF"])
def test_harness_debug_off_values_keep_errors_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HARNESS_DEBUG", value)
    assert main(["run", "--encoder", "scratc"]) == 2  # not re-raised: debugging is off
    (line,) = lines(capsys.readouterr().err)
    assert line.startswith("harness: error: unknown encoder 'scratc'; did you mean 'scratch'?")


@pytest.mark.parametrize("value", ["1", "true", "Yes", "on", "2"])
def test_harness_debug_on_values_show_tracebacks(monkeypatch: pytest.MonkeyPatch,
                                                 value: str) -> None:
    monkeypatch.setenv("HARNESS_DEBUG", value)
    with pytest.raises(HarnessError, match="did you mean 'scratch'"):
        main(["run", "--encoder", "scratc"])


def test_broken_plugin_blocks_all_and_is_named(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from harness import registry

    real = registry._entry_points()
    broken = metadata.EntryPoint(name="broken", value="no_such_module_xyz", group="harness")
    monkeypatch.setattr(registry, "_entry_points", lambda: [*real, broken])
    assert main(["run", "--all"]) == 2
    line = one_error_line(capsys)
    assert "broken" in line and "HARNESS_DISABLE_PLUGINS" in line
    assert main(["run", "--encoder", "scratch", "--task", "parityy"]) == 2
    line = one_error_line(capsys)
    assert "did you mean 'parity'" in line and "'broken' failed to load" in line


def test_wrong_hook_argument_is_one_line(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "argplug", '''
        @hookimpl
        def register_tasks(reg):
            pass
    ''')
    assert main(["--plugin", path, "plugins"]) == 2
    assert "'argplug'" in one_error_line(capsys)


# ---------------------------------------------------------------------------------- runs


def test_smoke_run_resume_and_leaderboard(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "board" / "README.md"
    argv = ["run", "--encoder", "scratch", "--task", "parity", "--task", "progression", *FAST,
            "--store", str(store), "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    computed, reused, failed = summary(captured.out)
    assert computed > 0 and reused == 0 and failed == 0
    assert "failed:" not in captured.err
    board = out.read_bytes()
    text = board.decode()
    assert text.startswith("# Leaderboard")
    for name in ("scratch", "scratch + full@parity", "scratch + full@progression"):
        assert f"| {name} " in text, name
    assert "## Failed cells" not in text

    assert main(argv) == 0
    again = summary(capsys.readouterr().out)
    assert again == (0, computed, 0)
    assert out.read_bytes() == board

    out2 = tmp_path / "O2.md"
    assert main(["leaderboard", "--store", str(store), "--out", str(out2)]) == 0
    assert out2.read_bytes() == board


def test_third_party_plugin(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "lastdigit", THIRD_PARTY)
    assert main(["--plugin", path, "plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    task = next(e for e in data["tasks"] if e["name"] == "last-digit-even")
    metric = next(e for e in data["metrics"] if e["name"] == "spread")
    assert task["plugin"] == metric["plugin"] == "lastdigit"
    assert task["distribution"] == f"file {path}"
    assert task["classes"] == ["odd", "even"]

    out = tmp_path / "o.md"
    assert main(["run", "--plugin", path, "--encoder", "scratch", "--task", "last-digit-even",
                 "--metric", "spread", "--metric", "silhouette", *FAST,
                 "--store", str(tmp_path / "s"), "--out", str(out)]) == 0
    computed, _, failed = summary(capsys.readouterr().out)
    assert computed > 0 and failed == 0
    text = out.read_text()
    assert "last-digit-even" in text and "spread" in text
    assert "scratch + full@last-digit-even" in text


def test_plugin_before_and_after_subcommand(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    first = write_plugin(tmp_path, "lastdigit", THIRD_PARTY)
    second = write_plugin(tmp_path, "undef", UNDEFINED)
    assert main(["--plugin", first, "plugins", "--json", "--plugin", second]) == 0
    data = json.loads(capsys.readouterr().out)
    owners = {e["name"]: e["plugin"] for e in data["metrics"]}
    assert owners["spread"] == "lastdigit" and owners["never"] == "undef"


def test_failing_metric(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "flaky", FAILING)
    base = ["run", "--plugin", path, "--encoder", "scratch", "--adapter", "none",
            "--task", "parity", "--task", "progression", "--metric", "flaky", *FAST]
    out = tmp_path / "o.md"
    assert main([*base, "--store", str(tmp_path / "s1"), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    computed, _, failed = summary(captured.out)
    assert (computed, failed) == (1, 1)
    failures = [line for line in lines(captured.err) if line.startswith("failed:")]
    assert len(failures) == 1
    assert "on parity" in failures[0] and "RuntimeError: flaky metric exploded" in failures[0]
    assert "## Failed cells" in out.read_text()

    assert main([*base, "--fail-fast", "--store", str(tmp_path / "s2"),
                 "--out", str(tmp_path / "o2.md")]) == 1
    captured = capsys.readouterr()
    ff_computed, _, ff_failed = summary(captured.out)
    assert ff_failed == 1 and ff_computed < computed
    assert "--fail-fast" in captured.err


def test_metric_undefined_is_nan_with_note(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "undef", UNDEFINED)
    store, out = tmp_path / "s", tmp_path / "o.md"
    assert main(["run", "--plugin", path, "--encoder", "scratch", "--adapter", "none",
                 "--task", "parity", "--metric", "never", "--metric", "silhouette", *FAST,
                 "--store", str(store), "--out", str(out)]) == 0
    computed, _, failed = summary(capsys.readouterr().out)
    assert computed == 1 and failed == 0
    db = Store.open_existing(store)
    try:
        rows = db.query("SELECT metric, value, note FROM scores")
    finally:
        db.close()
    never = [r for r in rows if r["metric"] == "never"]
    assert len(never) == 1
    assert never[0]["value"] is None or math.isnan(never[0]["value"])
    assert never[0]["note"] == "why: never defined here"
    text = out.read_text()
    assert "n/a" in text
    assert "## Notes" in text and "why: never defined here" in text


def test_readme_examples_never_replace_the_committed_page(tmp_path, monkeypatch):
    """Issue #31 item 11: README's own ``--profile smoke`` examples wrote leaderboard/README.md
    through the default --out. Only ``harness run --all`` alone (the committed page's run)
    writes there by default; any other run, and ``harness leaderboard``, beside the store."""
    from harness.arguments import DEFAULT_OUT, build_parser, default_out

    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "leaderboard" / "README.md"
    committed.parent.mkdir()
    committed.write_text("the committed page\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--encoder", "scratch", "--adapter", "full", "--task", "parity",
                     "--task", "progression", "--profile", "smoke", "--device", "cpu"])
        assert code == 0, err.getvalue()
        assert main(["leaderboard"]) == 0, err.getvalue()
    assert committed.read_text() == "the committed page\n"
    beside = Path(".harness-leaderboard") / "README.md"
    assert (tmp_path / beside).read_text().startswith("# Leaderboard")
    assert f"leaderboard: {beside}" in err.getvalue()  # said where
    parser = build_parser()
    assert default_out(parser.parse_args(["run", "--all"])) == DEFAULT_OUT
    for argv in (["run", "--all", "--profile", "smoke"], ["run", "--all", "--merge", "ties"],
                 ["run", "--all", "--seeds", "2"], ["run", "--all", "--train-task", "parity"]):
        assert default_out(parser.parse_args(argv)) == str(beside), argv
    assert default_out(parser.parse_args(["run", "--store", "/x/S/"])) == \
        "/x/S-leaderboard/README.md"
