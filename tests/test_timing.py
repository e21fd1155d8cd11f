"""Where a run's wall time goes (harness.timing): nested stages charge each second once, to
the innermost one, and `harness run --timing` prints them."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.timing import Clock


def test_nested_stages_charge_the_innermost() -> None:
    clock = Clock()
    with clock.stage("embedding"):
        time.sleep(0.05)
        with clock.stage("training"):
            time.sleep(0.1)
        time.sleep(0.05)
    assert 0.09 <= clock.seconds["training"] < 0.5
    assert 0.09 <= clock.seconds["embedding"] < 0.5  # the training second is not counted twice
    clock.seconds = {"embedding": 5.0, "training": 3.0, "report": 0.2}
    # in the stages' order; under half a second left out; the rest is "other"
    assert clock.line(10.0) == ("time: 10 s; training 3 s (30%), embedding 5 s (50%), "
                                "other 2 s (18%)")


class SlowTime:
    """The time module with a clock 100x slow-motion: a smoke run's stages (milliseconds on a
    fast CPU) then reach the half second the line shows, whatever the CPU."""

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def perf_counter(self) -> float:
        return 100 * time.perf_counter()


def test_run_prints_its_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.execute
    import harness.timing

    for module in (harness.timing, harness.execute):  # the stages and the total alike
        monkeypatch.setattr(module, "time", SlowTime())
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "soup", "--task",
            "parity", "--task", "primality", "--profile", "smoke", "--store",
            str(tmp_path / "s"), "--out", str(tmp_path / "lb.md")]
    assert main(args) == 0
    assert "time:" not in capsys.readouterr().err  # not a terminal, no --timing: quiet
    assert main([*args[:1], "--timing", *args[1:], "--seed", "1"]) == 0
    err = capsys.readouterr().err
    found = re.search(r"^time: (\d+) s; (.*)$", err, re.MULTILINE)
    assert found, err
    shares = dict(re.findall(r"([a-z -]+?) (\d+) s \(\d+%\)", found.group(2)))
    assert "scoring" in {k.strip() for k in shares}, found.group(0)  # stages under 0.5 s: out
    assert sum(int(v) for v in shares.values()) <= int(found.group(1)) + len(shares)
