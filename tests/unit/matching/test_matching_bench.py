"""``nexus bench matching``: workload W1 as the issue defines it, and the shape of the figures
(never their values: tests do not time anything)."""

from __future__ import annotations

from collections import Counter

from nexus_matching import bench


def test_w1_is_deterministic_and_drawn_in_the_issues_proportions() -> None:
    ops = bench.workload(20_000)
    assert ops == bench.workload(20_000)  # random.Random(42)
    kinds = Counter(op[0] for op in ops)
    assert abs(kinds[bench.CANCEL] / len(ops) - 0.20) < 0.02
    assert abs(kinds[bench.MARKET] / len(ops) - 0.05) < 0.01
    limits = [op for op in ops if op[0] == bench.LIMIT]
    crossing = [op for op in limits if op[4] == (bench.P0 + 5 if op[3] else bench.P0 - 5)]
    assert abs(len(crossing) / len(ops) - 0.25) < 0.02
    passive = [op for op in limits if op not in crossing]
    assert all(1 <= (bench.P0 - op[4] if op[3] else op[4] - bench.P0) <= 20 for op in passive)
    assert all(1 <= op[5] <= 100 for op in ops if op[0] != bench.CANCEL)


def test_the_throughput_figure_is_the_fastest_of_the_runs() -> None:
    result = bench.run(2_000, peer=False, repeat=3)
    assert len(result.runs) == 3 and result.peer_runs == ()
    assert result.seconds == min(result.runs) and result.peer_seconds is None
    assert result.ops_per_s >= result.median_ops_per_s
    assert 0 < result.p50_ns <= result.p99_ns <= result.p999_ns <= result.max_ns
