"""Scores alerts against the synthetic day's ground truth: precision, recall and F1 per detector
(never accuracy: manipulation is rare), same-owner wash recall, the market maker's false alerts
per 10,000 of its orders, and the episodes that straddle a clock boundary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from nexus_surveillance.detectors import DETECTORS, Alert
from nexus_surveillance.synthetic import MINUTE, MM_USER, SECOND, Episode

SLACK_BEFORE_NS = 10 * SECOND
SLACK_AFTER_NS = 40 * SECOND


@dataclass
class Score:
    detector: str
    alerts: int = 0
    true_alerts: int = 0
    cross_pattern_alerts: int = 0  # on an injected episode of another pattern
    episodes: int = 0
    caught: int = 0
    straddling: int = 0
    straddling_caught: int = 0
    missed: list[Episode] = field(default_factory=list)
    false: list[Alert] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        return self.caught / self.episodes if self.episodes else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Report:
    scores: dict[str, Score]
    same_owner_wash_episodes: int
    same_owner_wash_caught: int
    market_maker_alerts: int
    market_maker_orders: int

    @property
    def same_owner_wash_recall(self) -> float:
        return self.same_owner_wash_caught / self.same_owner_wash_episodes if self.same_owner_wash_episodes else 1.0

    @property
    def market_maker_alerts_per_10k(self) -> float:
        return 10_000 * self.market_maker_alerts / self.market_maker_orders if self.market_maker_orders else 0.0


def _matches(alert: Alert, episode: Episode) -> bool:
    if alert.symbol != episode.symbol or not set(alert.users) & set(episode.users):
        return False
    start = int(alert.window_start.timestamp()) * SECOND
    end = int(alert.window_end.timestamp()) * SECOND
    return start <= episode.end_ns + SLACK_AFTER_NS and end >= episode.start_ns - SLACK_BEFORE_NS


def straddle_bucket(episode: Episode) -> int:
    """The clock bucket an episode is checked against: a second for quote stuffing, else a minute."""
    return SECOND if episode.pattern == "quote_stuffing" else MINUTE


def evaluate(alerts: Iterable[Alert], episodes: list[Episode], market_maker_orders: int) -> Report:
    by_symbol: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_symbol.setdefault(ep.symbol, []).append(ep)
    scores = {name: Score(name) for name in DETECTORS}
    caught: set[int] = set()
    mm_alerts = 0
    for alert in alerts:
        score = scores[alert.detector]
        score.alerts += 1
        if MM_USER in alert.users:
            mm_alerts += 1
        hit = False
        cross = False
        for ep in by_symbol.get(alert.symbol, ()):
            if _matches(alert, ep):
                if ep.pattern == alert.detector:
                    hit = True
                    caught.add(id(ep))
                else:
                    cross = True
        if hit:
            score.true_alerts += 1
        else:
            if cross:
                score.cross_pattern_alerts += 1
            score.false.append(alert)
    same_owner = same_owner_caught = 0
    for ep in episodes:
        score = scores[ep.pattern]
        score.episodes += 1
        got = id(ep) in caught
        score.caught += got
        if not got:
            score.missed.append(ep)
        if ep.straddles(straddle_bucket(ep)):
            score.straddling += 1
            score.straddling_caught += got
        if ep.kind == "same_owner":
            same_owner += 1
            same_owner_caught += got
    return Report(scores, same_owner, same_owner_caught, mm_alerts, market_maker_orders)
