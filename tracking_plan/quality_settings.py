"""Tuning of the quality checks: the plan's `defaults: quality:` (tracking_plan/model.py `Defaults.quality`).

Every number has its reason beside it; quality_checks/ reads them from here (scoring's defaults too).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["both", "up", "down"]


class MetricTuning(BaseModel):
    """How one metric family is scored."""

    model_config = ConfigDict(extra="forbid")

    direction: Direction = "both"
    sensitivity: float | None = None  # robust z threshold; None: QualitySettings.sensitivity
    # counts: the z (as the count model's lower tail) a drop must pass, when it differs from a rise's
    drop_sensitivity: float | None = None
    # shares: |observed - median| / median must exceed this; counts: the ratio either way
    # (1.0 = doubling or halving). None: QualitySettings.min_relative_change
    min_relative_change: float | None = None
    # counts: the ratio a rise must exceed, when it differs from a drop's (None: min_relative_change)
    min_relative_rise: float | None = None
    min_absolute_change: float = 0.0  # and |observed - median| this (shares: percentage points / 100)
    min_count: int = 0  # shares: a day with fewer lines than this is not scored
    min_expected: float = 0.0  # counts: below this many persons on a usual day only a drop to zero alerts
    # counts: the run test of sustained drops (QualitySettings.drop_run_days): the z (as the count
    # model's lower tail of a run's total) a run of 2 or more days must pass; None: no run test
    run_sensitivity: float | None = None
    # ... and the ratio a run's total must be below its expected by (None: min_relative_change)
    run_min_relative_change: float | None = None


def _default_metrics() -> dict[str, MetricTuning]:
    return {
        # counts (a ratio, not a difference): a drop by a third (ratio 1.5) or a doubling. Traffic
        # grows on its own (new accounts, a big customer's team): rises need more than drops, which
        # are what broken tracking does (issue 22's benchmark: +50% rises of organic growth were
        # the bulk of the false alerts). Low counts are judged by the count model, not skipped
        # Drops are judged at z 3 (the count model's lower tail), rises at `sensitivity`: in the
        # benchmark every false alert of a count at z 3.5 was a rise of a quiet, bursty event
        # Sustained drops (run_*): 2-3 days' total, or the events per person, at z 3.5 and 20% below
        # their expected (ratio 1.25). Issue 22's benchmark (24 runs): a 50% drop of an event of
        # >= 100 a day is caught 56 times in 57 (91% with the ratio at 1.5, 70% without the run
        # test), for 0.87 false alerts per 10,000 series-days (0.64 without)
        "volume": MetricTuning(
            direction="both",
            min_relative_change=0.5,
            min_relative_rise=1.0,
            drop_sensitivity=3.0,
            run_sensitivity=3.5,
            run_min_relative_change=0.25,
        ),
        "persons": MetricTuning(
            direction="both",
            min_relative_change=0.5,
            min_relative_rise=1.0,
            drop_sensitivity=3.0,
            run_sensitivity=3.5,
            run_min_relative_change=0.25,
        ),
        # below 20 lines one person's session moves a share by 5 points: not a tracking change;
        # a rate moving by less than 10 points is noise on the daily counts this project sees
        "null_rate": MetricTuning(direction="up", min_absolute_change=0.10, min_count=20),
        "quarantine_share": MetricTuning(direction="up", min_absolute_change=0.05, min_count=20),
        # delivery lag: a doubling by more than ten minutes is a pipeline problem, not mobile
        # batching; the p95 of fewer than 50 lags is just its largest two or three
        "lag_p95_seconds": MetricTuning(
            direction="up", min_relative_change=1.0, min_absolute_change=600.0, min_count=20
        ),
    }


class QualitySettings(BaseModel):
    """Proposed as `Defaults.quality` in the plan (plan.yaml `defaults: quality:`)."""

    model_config = ConfigDict(extra="forbid")

    # Elementary's default training period; the detection day itself is never part of it
    training_days: int = Field(default=14, ge=3)
    # below this many clean past points a series is not scored (no alert on a cold start)
    min_history_days: int = Field(default=10, ge=3)
    # weekly seasonality: a Monday against up to this many past Mondays (4: on a series growing
    # 2% a day an older median would already sit 30% low) ...
    seasonal_weeks: int = Field(default=4, ge=2)
    # ... once there are this many; before that weekday/weekend days, then all days
    min_seasonal_points: int = Field(default=3, ge=2)
    # (2: weekends are 4 of 14 training days, and a weekday-heavy window would flag every Saturday)
    min_daytype_points: int = Field(default=2, ge=1)
    # robust z (median/MAD scaled to sigma) beyond which a point is an anomaly. 4.5: under normal
    # noise 1 false alarm in ~150 000 points (90 days x 30 events x 10 metrics = 27 000); the
    # generated sample's biggest clean weekday swing scores 4.1
    sensitivity: float = Field(default=4.5, gt=0)
    # Elementary's flat-series defect: a 0.005% move is never news, however small the MAD
    min_relative_change: float = Field(default=0.3, ge=0)
    # a day's counts are scored once the newest event received is this close to the day's end
    # (a run in the middle of a day would see its volume "drop"; issue 22)
    partial_day_grace_minutes: float = Field(default=60.0, ge=0)
    # counts: the longest run of days whose total the run test judges (MetricTuning.run_sensitivity;
    # 1: neither sustained-drop test, the per-person one included)
    drop_run_days: int = Field(default=3, ge=1, le=7)
    # a level change is learned (the days before it moved to it) when most of the last
    # min_history_days were taken out of training by alerts, or when at least this many were and
    # nearly every day scored among them (this share) lay on their side of the expected: a persons
    # series under a lasting drop of the rows is flagged only now and then. Benchmark, a lasting 50%
    # drop followed for three weeks: quiet through its last week 42 -> 44 of 49 (held out 19 -> 21
    # of 25), the false alerts of clean data the same (26)
    shift_min_taken: int = Field(default=3, ge=1)
    shift_agree: float = Field(default=0.9, gt=0.5, le=1.0)
    # a new JSON type reaching this share of a property's values (under 1% before, and at least 3
    # values that day) is a type change. 0.05: a change reaching 20% of values shows as 20% +- a few
    # points a day; at 0.2 half of those days fell short (benchmark: recall 50%)
    type_change_min_share: float = 0.05
    type_change_min_history: int = 20  # values of the property seen in the training window
    # PSI above 0.25 is the conventional "significant shift" of a distribution
    psi_threshold: float = 0.25
    # PSI of fewer values a day is mostly sampling noise. 20 would catch more shifts of events sent
    # ~45 times a day (benchmark: 60% -> 100% at a 50% shift) but flagged organic platform-mix moves
    # of quiet events; kept at 50 (issue 22's measured operating point)
    psi_min_count: int = 50
    # retired in issue 22 (a zero is judged by the count model's range, not by its own rule); still
    # accepted so plans written for the previous release keep loading, and ignored
    zero_min_median: float | None = Field(default=None, deprecated="ignored: zeros are judged by the count model")
    # freshness: an event usually seen every day becomes overdue after this many hours of silence
    freshness_hours: float = 24.0
    # coverage: a planned active event not seen for this many days (when it was expected to be)
    coverage_days: int = 7
    metrics: dict[str, MetricTuning] = Field(default_factory=_default_metrics)
    # event name -> metric family -> tuning, overriding `metrics` for noisy or critical events
    events: dict[str, dict[str, MetricTuning]] = {}
    # row-level gates: the share of rows that must pass (1.0: the validator already enforced them,
    # so any failure is a pipeline defect)
    mostly: float = Field(default=1.0, ge=0, le=1)
    # Pandera: full data below this many rows, a seeded sample of this many above. 50k finds a
    # systematic schema break present in 1 row in 10,000 with 99% probability; the SQL gates see
    # every row anyway, and 200k cost 5 s of a 1M-event run (issue 8's budget is 25% of the run)
    pandera_sample_rows: int = 50_000

    def tuning(self, metric: str, event: str | None = None) -> MetricTuning:
        base = self.metrics.get(metric) or MetricTuning()
        t = self.events.get(event or "", {}).get(metric) or base
        return t.model_copy(
            update={
                "sensitivity": t.sensitivity if t.sensitivity is not None else self.sensitivity,
                "min_relative_change": t.min_relative_change
                if t.min_relative_change is not None
                else self.min_relative_change,
            }
        )


def settings_for(plan) -> QualitySettings:
    """The plan's quality settings (plan.yaml `defaults: quality:`, else the defaults above)."""
    return plan.header.defaults.quality
