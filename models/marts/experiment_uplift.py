"""marts.experiment_uplift: for each randomized experiment, who the treatment helps.

A two-model (T-learner) uplift model scores every exposed person out of fold; the Qini AUC says
how well that ranking beats random targeting, and the measured uplift per segment (company size,
with a Welch CI) says which segments to target: those whose whole interval is above zero.
"""

import pandas as pd

from models.stats import qini_auc, uplift_by_segment, uplift_t_learner
from tracking_plan.model import Plan

from .aggregates import EventSource, latest_value_sql, source_of
from .experiment_results import exposures, metric_outcomes

SEGMENT = "company_size"
SIZE_RANK = {"1-10": 1, "11-50": 2, "51-200": 3, "201-1000": 4, "1000+": 5}
COLUMNS = [
    "experiment",
    "variant",
    "metric",
    "segment_field",
    "segment",
    "n_treated",
    "n_control",
    "rate_treated",
    "rate_control",
    "uplift",
    "ci_low",
    "ci_high",
    "p_value",
    "target",
    "predicted_uplift",
    "qini_auc",
]


def compute_experiment_uplift(events, plan: Plan, data_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per experiment × treated variant × segment, on the experiment's primary metric.

    ``events``: an ``aggregates.EventSource`` (a warehouse) or an event frame (one row per event)."""
    src = source_of(events, plan)
    data_end = data_end if data_end is not None else src.data_end()
    sizes = src.per_person("latest_value", lambda ev: latest_value_sql(ev, SEGMENT)).set_index("person_id")[SEGMENT]
    rows = []
    for exp in plan.metrics.experiments:
        exposed = exposures(src, exp)
        if exposed.empty:
            continue
        frame, _ = metric_outcomes(src, exposed, plan, exp.primary_metric, data_end)  # (read once: above)
        frame = frame.dropna(subset=["y"])
        frame[SEGMENT] = frame["person_id"].map(sizes).fillna("unknown")
        frame["size_rank"] = frame[SEGMENT].map(SIZE_RANK).fillna(0)
        for variant in [v for v in exp.variants if v != exp.control]:
            df = frame[frame["variant"].isin([exp.control, variant])].copy()
            df["treated"] = (df["variant"] == variant).astype(int)
            if df["treated"].nunique() < 2 or len(df) < 50:  # too few to fit two models
                continue
            df["score"] = uplift_t_learner(df, treatment="treated", outcome="y", features=["size_rank", "pre"])
            q = qini_auc(df["y"], df["treated"], df["score"])
            seg = uplift_by_segment(df, segment=SEGMENT, treatment="treated", outcome="y", score="score")
            seg = seg.rename(columns={SEGMENT: "segment"}).assign(
                experiment=exp.key, variant=variant, metric=exp.primary_metric, segment_field=SEGMENT, qini_auc=q
            )
            rows.append(seg)
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(rows, ignore_index=True).reindex(columns=COLUMNS)


def build(con, plan: Plan, keep=None) -> pd.DataFrame:
    """marts.experiment_uplift from per-person aggregates of stitch.events (kept by ``keep``, when the
    pipeline gives it: ``EventSource.per_person``)."""
    return compute_experiment_uplift(EventSource.warehouse(con, plan, keep), plan)


def summary(df: pd.DataFrame) -> dict:
    return {"target_segments": sorted(df.loc[df["target"].astype(bool), "segment"].astype(str)) if len(df) else []}
