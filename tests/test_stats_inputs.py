"""The analysts' estimators (`from models.stats import ...`) refuse a frame they cannot read in one
line naming the function, the argument and what was found: a misspelt column was a pandas KeyError
("['nope'] not in index"), a text outcome numpy's "could not convert string to float", an empty
covariate list scikit-learn's "Found array with 0 feature(s)", and a treatment coded 0/1/2 was
estimated as if 2 were a dose (matching counted its 2s in the propensity model and in neither arm)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.stats import (
    ColumnNotFound,
    ab_readout,
    before_after,
    diff_in_diff,
    event_study,
    interrupted_time_series,
    matched_effect,
    placebo_did,
    twfe_did,
    uplift_by_segment,
    uplift_t_learner,
)


@pytest.fixture()
def frame():
    rng = np.random.default_rng(7)
    n = 200
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "treated": rng.integers(0, 2, n),
            "post": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "variant": rng.choice(["control", "b"], n),
            "unit": np.arange(n) % 20,
            "period": np.arange(n) // 20,
            "day": pd.date_range("2026-01-01", periods=n),
            "group": (np.arange(n) % 20 < 10).astype(int),
            "city": rng.choice(["Lisbon", "Porto"], n),
        }
    )


CALLS = {
    "diff_in_diff": lambda df, **kw: diff_in_diff(df, **{"outcome": "y", "treated": "treated", "post": "post", **kw}),
    "twfe_did": lambda df, **kw: twfe_did(
        df, **{"outcome": "y", "unit": "unit", "time": "period", "treated": "treated", **kw}
    ),
    "matched_effect (ipw)": lambda df, **kw: matched_effect(
        df, **{"treatment": "treated", "outcome": "y", "covariates": ["x"], "method": "ipw", **kw}
    ),
    "ab_readout": lambda df, **kw: ab_readout(df, **{"variant": "variant", "outcome": "y", "control": "control", **kw}),
    "interrupted_time_series": lambda df, **kw: interrupted_time_series(
        df, **{"time": "day", "outcome": "y", "launch": "2026-04-01", **kw}
    ),
    "before_after": lambda df, **kw: before_after(df, **{"time": "day", "outcome": "y", "launch": "2026-04-01", **kw}),
    "event_study": lambda df, **kw: event_study(
        df, **{"outcome": "y", "unit": "unit", "time": "period", "group": "group", "launch": 5, **kw}
    ),
    "placebo_did": lambda df, **kw: placebo_did(
        df, **{"outcome": "y", "unit": "unit", "time": "period", "group": "group", "launch": 5, **kw}
    ),
    "uplift_by_segment": lambda df, **kw: uplift_by_segment(
        df, **{"segment": "city", "treatment": "treated", "outcome": "y", **kw}
    ),
    "uplift_t_learner": lambda df, **kw: uplift_t_learner(
        df, **{"treatment": "treated", "outcome": "y", "features": ["x"], "cv": None, **kw}
    ),
}
# the estimators whose treatment (or group) indicator a 0/1/2 coding breaks, and that argument's name
INDICATORS = {
    "diff_in_diff": "treated",
    "twfe_did": "treated",
    "matched_effect (ipw)": "treatment",
    "uplift_by_segment": "treatment",
    "uplift_t_learner": "treatment",
}


@pytest.mark.parametrize("fn", list(CALLS))
def test_a_column_that_is_not_there_is_named(frame, fn):
    with pytest.raises(ColumnNotFound) as info:
        CALLS[fn](frame, outcome="revenue")
    assert str(info.value) == (
        f"{fn}: outcome='revenue' is not a column of the frame (its columns: 'y', 'treated', 'post', 'x', "
        "'variant', 'unit', 'period', 'day', ... (10 in all))"
    )
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)  # (what callers caught before)


@pytest.mark.parametrize("fn", list(CALLS))
def test_a_text_outcome_is_refused_naming_a_value(frame, fn):
    with pytest.raises(
        ValueError,
        match=rf"^{fn.replace('(', '.').replace(')', '.')}: outcome='city' must be numeric; found '(Lisbon|Porto)'$",
    ):
        CALLS[fn](frame, outcome="city")


@pytest.mark.parametrize("fn", list(INDICATORS))
def test_an_indicator_coded_0_1_2_is_refused(frame, fn):
    coded = frame.assign(treated=np.arange(len(frame)) % 3)
    arg = INDICATORS[fn]
    with pytest.raises(ValueError) as info:
        CALLS[fn](coded)
    assert str(info.value) == f"{fn}: {arg}='treated' must be 0/1 or boolean; found 2"


def test_indicators_may_be_booleans_or_floats(frame):
    # the same estimate from 0/1 integers, booleans and 0.0/1.0
    base = CALLS["diff_in_diff"](frame).effect
    as_bool = frame.assign(treated=frame["treated"].astype(bool), post=frame["post"] == 1)
    as_float = frame.assign(treated=frame["treated"].astype(float))
    assert CALLS["diff_in_diff"](as_bool).effect == pytest.approx(base)
    assert CALLS["diff_in_diff"](as_float).effect == pytest.approx(base)
    ipw = CALLS["matched_effect (ipw)"](frame).effect
    assert CALLS["matched_effect (ipw)"](as_bool).effect == pytest.approx(ipw)


def test_matching_names_its_covariates_and_balance_columns(frame):
    with pytest.raises(ValueError, match=r"^matched_effect \(nearest\): covariates is empty"):
        matched_effect(frame, treatment="treated", outcome="y", covariates=[])
    with pytest.raises(ValueError, match=r"^matched_effect \(ipw\): covariates='city' must be numeric; found"):
        CALLS["matched_effect (ipw)"](frame, covariates=["x", "city"])
    with pytest.raises(ColumnNotFound, match=r"^matched_effect \(ipw\): balance_also='age' is not a column"):
        CALLS["matched_effect (ipw)"](frame, balance_also=["age"])
    # numbers stored as text are numbers
    text = frame.assign(x=frame["x"].map(str))
    assert CALLS["matched_effect (ipw)"](text).effect == pytest.approx(CALLS["matched_effect (ipw)"](frame).effect)


@pytest.mark.parametrize("fn", ["event_study", "placebo_did"])
def test_a_group_coded_0_1_2_is_refused(frame, fn):
    with pytest.raises(ValueError, match=rf"^{fn}: group='group' must be 0/1 or boolean; found 2$"):
        CALLS[fn](frame.assign(group=frame["unit"] % 3))
    CALLS[fn](frame)  # (the frame itself is estimable: the refusal is the coding's)


def test_a_covariate_that_does_not_vary_adds_nothing(frame):
    # its standardized column of zeros made the logistic information singular: numpy's "Singular
    # matrix" came out of IPW; nearest-neighbour matching tied every treated unit to one control
    const = frame.assign(c=3.0)
    for method in ("ipw", "nearest"):
        with_c = matched_effect(const, treatment="treated", outcome="y", covariates=["c", "x"], method=method)
        without = matched_effect(const, treatment="treated", outcome="y", covariates=["x"], method=method)
        assert (with_c.effect, with_c.std_error) == pytest.approx((without.effect, without.std_error))
    alone = matched_effect(const, treatment="treated", outcome="y", covariates=["c"], method="ipw")
    means = const.groupby("treated")["y"].mean()
    assert alone.effect == pytest.approx(means[1] - means[0])  # equal weights: the difference of means
    assert 0 < alone.std_error < np.inf
    with pytest.raises(ValueError, match=r"^matched_effect \(nearest\): every unit has the same propensity score"):
        matched_effect(const, treatment="treated", outcome="y", covariates=["c"], method="nearest")
