"""The BO / RS loop on toy objectives with a known optimum; journal; kill -9 and --resume."""

import os
import signal
import subprocess
import sys
import time

import pytest

from snnc.search.executors import LocalExecutor
from snnc.search.journal import Journal, JournalError, read_journal
from snnc.search.loop import SearchConfig, run_search
from snnc.search.space import BlockSpace, SearchSpace
from snnc.search.toy import ToyObjective

SPACE = SearchSpace((BlockSpace(3, kinds=("S2S", "S2M"), fractions=(0.5, 1.0)),))


def _values(state):
    return [state.evals[i]["objective"] for i in sorted(state.evals)]


def test_bo_finds_known_optimum_and_beats_random(tmp_path):
    # 15625 candidates; the toy's optimum (drop 0) is its target. Fixed seeds: deterministic.
    found, bo_best, rs_best = 0, [], []
    for seed in (1, 2, 3):
        toy = ToyObjective.random(SPACE, 7 + seed)
        cfg = SearchConfig(method="bo", budget=40, batch=4, seed=seed)
        bo = run_search(SPACE, LocalExecutor(toy), cfg, tmp_path / f"bo{seed}")
        rs = run_search(SPACE, LocalExecutor(toy),
                        SearchConfig(method="random", budget=40, batch=4, seed=seed),
                        tmp_path / f"rs{seed}")
        found += min(_values(bo)) == 0.0
        bo_best.append(min(_values(bo)))
        rs_best.append(min(_values(rs)))
        # the GP rounds used UCB with the recorded beta; the first rounds were random
        modes = [r["mode"] for r in bo.rounds]
        assert modes[:2] == ["random", "random"] and set(modes[2:]) == {"gp"}
    assert found >= 2, bo_best
    assert all(b < r for b, r in zip(bo_best, rs_best)), (bo_best, rs_best)


def test_no_duplicate_proposals_and_budget(tmp_path):
    toy = ToyObjective.random(SPACE, 0)
    st = run_search(SPACE, LocalExecutor(toy), SearchConfig(budget=30, batch=5, seed=0),
                    tmp_path)
    proposed = [tuple(c["levels"]) for r in st.rounds for c in r["candidates"]]
    assert len(proposed) == 30 == len(set(proposed)) == len(st.evals)
    ids = sorted(st.evals)
    assert ids == list(range(30))
    recs = list(read_journal(tmp_path / "journal.jsonl"))
    assert recs[0]["type"] == "header"
    ev = [r for r in recs if r["type"] == "eval"]
    assert all({"levels", "objective", "energy_uj", "rates", "seed", "finished_at",
                "blocks"} <= set(r) for r in ev)


def test_tiny_space_is_exhausted_without_repeats(tmp_path):
    sp = SearchSpace((BlockSpace(1, kinds=("S2S",), fractions=(1.0,)),))  # 1 entry, 3 levels
    st = run_search(sp, LocalExecutor(ToyObjective.random(sp, 0)),
                    SearchConfig(budget=10, batch=2, seed=0, n_init=2), tmp_path)
    assert sorted(tuple(e["levels"]) for e in st.evals.values()) == [(0,), (1,), (2,)]


def test_journal_torn_last_line_and_corruption(tmp_path):
    p = tmp_path / "journal.jsonl"
    j = Journal(p)
    j.append({"type": "header", "x": 1})
    j.append({"type": "eval", "eval_id": 0})
    with open(p, "a") as fh:
        fh.write('{"type": "eval", "eval_id": 1, "obj')  # kill -9 in the middle of a write
    with pytest.warns(UserWarning, match="torn last line"):
        assert [r["type"] for r in read_journal(p)] == ["header", "eval"]
    with pytest.warns(UserWarning, match="removing a torn last line"):
        j2 = Journal(p)
    j2.append({"type": "eval", "eval_id": 1})
    assert [r.get("eval_id") for r in read_journal(p)] == [None, 0, 1]
    lines = p.read_text().splitlines()
    lines.insert(1, "{garbage")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError, match="line 2 is not a valid journal record"):
        list(read_journal(p))


def test_existing_journal_needs_resume_and_same_settings(tmp_path):
    toy = ToyObjective.random(SPACE, 0)
    run_search(SPACE, LocalExecutor(toy), SearchConfig(budget=4, batch=2), tmp_path)
    with pytest.raises(JournalError, match="pass --resume"):
        run_search(SPACE, LocalExecutor(toy), SearchConfig(budget=4, batch=2), tmp_path)
    with pytest.raises(JournalError, match="seed=0.*now 1"):
        run_search(SPACE, LocalExecutor(toy), SearchConfig(budget=4, batch=2, seed=1),
                   tmp_path, resume=True)
    other = SearchSpace((BlockSpace(2),))
    with pytest.raises(JournalError, match="different search space"):
        run_search(other, LocalExecutor(toy), SearchConfig(budget=4, batch=2), tmp_path,
                   resume=True)


_CHILD = """
import sys, torch
torch.set_num_threads(1)
from snnc.search.executors import LocalExecutor
from snnc.search.loop import SearchConfig, run_search
from snnc.search.space import BlockSpace, SearchSpace
from snnc.search.toy import ToyObjective
sp = SearchSpace((BlockSpace(3, kinds=("S2S", "S2M"), fractions=(0.5, 1.0)),))
toy = ToyObjective.random(sp, 5, noise=0.1)
toy = ToyObjective(sp, toy.target, toy.weights, noise=0.1, delay=float(sys.argv[2]))
run_search(sp, LocalExecutor(toy), SearchConfig(budget=24, batch=4, seed=3, n_init=8),
           sys.argv[1], resume=True)
"""


class Counting:
    """Wraps an evaluator and records which candidates it was asked to evaluate."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, levels, seed):
        self.calls.append(tuple(levels))
        return self.inner(levels, seed)


def test_kill9_then_resume_loses_nothing(tmp_path):
    import torch

    torch.set_num_threads(1)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.25"])
    journal = killed / "journal.jsonl"
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        if journal.exists():
            n = sum('"type": "eval"' in line for line in journal.read_text().splitlines())
            if n >= 10:  # past the random rounds, in the middle of a GP round
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["eval_id"]: r for r in read_journal(journal) if r["type"] == "eval"}
    assert len(before) >= 10

    toy = ToyObjective.random(SPACE, 5, noise=0.1)
    toy = ToyObjective(SPACE, toy.target, toy.weights, noise=0.1)
    counting = Counting(toy)
    cfg = SearchConfig(budget=24, batch=4, seed=3, n_init=8)
    resumed = run_search(SPACE, LocalExecutor(counting), cfg, killed, resume=True)
    # nothing finished was evaluated again, and nothing finished was lost
    assert not set(counting.calls) & {tuple(r["levels"]) for r in before.values()}
    for i, rec in before.items():
        assert resumed.evals[i]["objective"] == rec["objective"]
    assert len(resumed.evals) == 24
    # the resumed search equals a search that was never interrupted
    clean = run_search(SPACE, LocalExecutor(toy), cfg, tmp_path / "clean")
    assert [tuple(clean.evals[i]["levels"]) for i in range(24)] == \
        [tuple(resumed.evals[i]["levels"]) for i in range(24)]
    assert _values(clean) == _values(resumed)
    # resuming a finished search evaluates nothing
    again = Counting(toy)
    run_search(SPACE, LocalExecutor(again), cfg, killed, resume=True)
    assert again.calls == []


def test_pareto_objective_and_plots(tmp_path):
    from snnc.search.plots import (curve, pareto_front, plot_best_so_far, plot_gp_vs_observed,
                                   plot_pareto)

    toy = ToyObjective.random(SPACE, 3)
    st = run_search(SPACE, LocalExecutor(toy),
                    SearchConfig(objective="pareto", budget=16, batch=4, seed=0), tmp_path)
    ok = [st.evals[i] for i in sorted(st.evals)]
    pts = [(e["drop"], e["energy_uj"]) for e in ok]
    front = pareto_front(pts)
    for i in front:  # nothing dominates a front point
        assert not any(p[0] <= pts[i][0] and p[1] <= pts[i][1] and p != pts[i] for p in pts)
    for i in set(range(len(pts))) - set(front):  # everything else is dominated (or equal)
        assert any(pts[j][0] <= pts[i][0] and pts[j][1] <= pts[i][1] for j in front)
    j = tmp_path / "journal.jsonl"
    assert plot_pareto(j, tmp_path / "p.png").stat().st_size > 0
    assert plot_gp_vs_observed(j, tmp_path / "g.png").stat().st_size > 0
    assert plot_best_so_far({"BO": [j, j]}, tmp_path / "b.png").stat().st_size > 0
    c = curve(j)
    assert all(a >= b for a, b in zip(c, c[1:])) and c[-1] == min(e["drop"] for e in ok)
