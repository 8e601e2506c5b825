"""The progress helper: a log line at most every N seconds with done/total, rate and ETA."""

from __future__ import annotations

import logging

import pytest

from iadbench.progress import progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "iadbench.progress"]


def test_logs_every_30_s_with_done_total_rate_and_eta_then_a_final_line(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO)
    with progress(total=100, desc="extract bottle/train", unit="img", clock=clock) as bar:
        for _ in range(10):  # 10 images every 12 s: a line at 36 s, 72 s and 108 s
            clock.now += 12
            bar.update(10)
    assert lines(caplog) == [
        "extract bottle/train: 30/100 img (30%), 0.833 img/s, ETA 1:24",
        "extract bottle/train: 60/100 img (60%), 0.833 img/s, ETA 0:48",
        "extract bottle/train: 90/100 img (90%), 0.833 img/s, ETA 0:12",
        "extract bottle/train: 100/100 img (100%), 0.833 img/s, in 2:00",
    ]


def test_wraps_an_iterable_and_counts_from_a_resumed_step(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO)
    seen = []
    for item in progress(range(5), desc="coreset", unit="pt", every=1, clock=clock):
        clock.now += 0.5
        seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert lines(caplog)[0] == "coreset: 2/5 pt (40%), 2 pt/s, ETA 0:02"
    assert lines(caplog)[-1] == "coreset: 5/5 pt (100%), 2 pt/s, in 0:02"
    caplog.clear()
    clock.now = 0.0
    with progress(total=10, initial=6, desc="train", unit="step", every=5, clock=clock) as bar:
        bar.set_postfix(epoch=3, loss="0.25")
        clock.now += 5
        bar.update(1)  # the rate counts this run's steps, not the resumed ones
    assert lines(caplog)[0] == "train: 7/10 step (70%), 0.2 step/s, ETA 0:15 [epoch=3, loss=0.25]"


def test_quiet_until_the_interval_passes_and_disable_silences(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO)
    bar = progress(total=3, desc="fast", clock=clock)
    bar.update(3)
    assert lines(caplog) == []  # 0 s elapsed: nothing before the end
    bar.close()
    bar.close()  # closing twice logs once
    assert lines(caplog) == ["fast: 3/3 it (100%), 0 it/s, in 0:00"]
    caplog.clear()
    with progress(total=3, desc="off", disable=True, clock=clock) as off:
        clock.now += 60
        off.update(3)
    assert lines(caplog) == []


def test_a_failed_loop_says_so_and_no_bar_off_a_terminal(caplog, capsys):
    clock = Clock()
    caplog.set_level(logging.INFO)
    with pytest.raises(RuntimeError), progress(total=4, desc="windows", clock=clock) as bar:
        assert bar.bar is None  # pytest's stderr is not a terminal: no tqdm bar
        bar.update(1)
        raise RuntimeError("boom")
    assert lines(caplog) == ["windows: 1/4 it (25%), 0 it/s, in 0:00 (stopped)"]
    assert capsys.readouterr().err == ""
