"""Attribution: paths from touches and conversions, rule-based credit, Markov removal effects."""

from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.value import (
    MODELS,
    NO_TOUCH,
    attribute,
    build_paths,
    markov_removal_effects,
)
from models.value_attribution import transition_counts

T0 = pd.Timestamp("2024-03-01")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def make_paths(spec: list[tuple[str, bool]]) -> pd.DataFrame:
    """Paths from 'A>B' strings; touches one day apart, conversions a day after the last touch."""
    rows = []
    for i, (path, converted) in enumerate(spec):
        chans = path.split(">")
        times = [day(k) for k in range(len(chans))]
        rows.append(
            {
                "person_id": f"p{i}",
                "converted": converted,
                "conversion_time": day(len(chans)) if converted else pd.NaT,
                "value": 10.0 if converted else 0.0,
                "channels": chans,
                "touch_times": times,
            }
        )
    return pd.DataFrame(rows)


# Four journeys: A>B converts, A does not, B>C converts, C does not.
HAND = make_paths([("A>B", True), ("A", False), ("B>C", True), ("C", False)])


def test_transition_counts_are_each_paths_steps():
    """The Markov chain's counts, taken over every touch at once, are those of stepping through each
    path: (start), its channels, (conversion) or (null); single touches, repeats, and a path without
    touches (from (start) straight to its end) included; lists or arrays (a kept path, read back)."""
    rng = np.random.default_rng(7)
    spec = [list(rng.choice(list("ABCDE"), size=rng.integers(0, 5))) for _ in range(300)]
    paths = pd.DataFrame({"channels": spec, "converted": rng.random(len(spec)) < 0.4})
    channels = sorted({c for p in spec for c in p})
    idx, k = {c: i for i, c in enumerate(channels)}, len(channels)
    want = np.zeros((k + 1, k + 2))
    for chans, converted in zip(paths["channels"], paths["converted"]):
        states = [k] + [idx[c] for c in chans]
        for a, b in pairwise(states):
            want[a, b] += 1
        want[states[-1], k if converted else k + 1] += 1
    for frame in (paths, paths.assign(channels=paths["channels"].map(np.array))):
        got, names = transition_counts(frame)
        assert names == channels and np.array_equal(got, want)


def test_markov_removal_effects_by_hand():
    # Transitions: start->A 2/4, start->B 1/4, start->C 1/4; A->B 1/2, A->null 1/2;
    # B->conv 1/2, B->C 1/2; C->conv 1/2, C->null 1/2.
    # P(conv) from C = .5; from B = .5 + .5 x .5 = .75; from A = .5 x .75 = .375;
    # from start = .5 x .375 + .25 x .75 + .25 x .5 = .5.
    # Without A: .25 x .75 + .25 x .5 = .3125 -> RE = 1 - .3125 / .5 = .375.
    # Without B: A and start->B lead nowhere; .25 x .5 = .125 -> RE = .75.
    # Without C: B converts with .5, A with .25; .5 x .25 + .25 x .5 = .25 -> RE = .5.
    re = markov_removal_effects(HAND)
    assert re.to_dict() == pytest.approx({"A": 0.375, "B": 0.75, "C": 0.5})
    credit = attribute(HAND, "markov").set_index("channel")["conversions"]
    # Two conversions shared in proportion .375 : .75 : .5 (sum 1.625).
    assert credit.to_dict() == pytest.approx({"A": 2 * 0.375 / 1.625, "B": 2 * 0.75 / 1.625, "C": 2 * 0.5 / 1.625})


def test_rule_based_models_by_hand():
    paths = make_paths([("A>B>C>D", True), ("B", True), ("C>A", True)])
    out = attribute(paths, ["first_touch", "last_touch", "linear", "position_based"])
    got = out.pivot(index="channel", columns="model", values="conversions").fillna(0)
    assert got["first_touch"].to_dict() == {"A": 1, "B": 1, "C": 1, "D": 0}
    assert got["last_touch"].to_dict() == {"A": 1, "B": 1, "C": 0, "D": 1}
    # linear: A .25 + .5, B .25 + 1, C .25 + .5, D .25
    assert got["linear"].to_dict() == pytest.approx({"A": 0.75, "B": 1.25, "C": 0.75, "D": 0.25})
    # position-based: 4 touches 40/10/10/40, one touch 100 %, two touches 50/50.
    assert got["position_based"].to_dict() == pytest.approx({"A": 0.4 + 0.5, "B": 0.1 + 1, "C": 0.1 + 0.5, "D": 0.4})


def test_time_decay_halves_per_half_life():
    paths = pd.DataFrame(
        [
            {
                "person_id": "p",
                "converted": True,
                "conversion_time": day(7),
                "value": 30.0,
                "channels": ["A", "B"],
                "touch_times": [day(0), day(7)],
            }
        ]
    )
    got = attribute(paths, "time_decay", half_life_days=7).set_index("channel")
    # A is one half-life old (weight 1/2), B is fresh (weight 1): shares 1/3 and 2/3.
    assert got["conversions"].to_dict() == pytest.approx({"A": 1 / 3, "B": 2 / 3})
    assert got["value"].to_dict() == pytest.approx({"A": 10.0, "B": 20.0})


def test_build_paths_window_previous_conversion_and_non_converters():
    touches = pd.DataFrame(
        {
            "person_id": ["u1", "u1", "u1", "u1", "u1", "u2", "u3"],
            "timestamp": [day(0), day(40), day(45), day(50), day(60), day(1), day(2)],
            "channel": ["old", "search", "email", "social", "display", "ads", "x"],
        }
    )
    conversions = pd.DataFrame(
        {"person_id": ["u1", "u1", "u3"], "timestamp": [day(46), day(55), day(1)], "value": [100.0, 50.0, 5.0]}
    )
    paths = build_paths(touches, conversions, lookback_days=30)
    conv = paths[paths["converted"]].set_index(["person_id", "conversion_time"])
    # day 0 is outside the 30-day window of the day-46 conversion.
    assert conv.loc[("u1", day(46)), "channels"] == ["search", "email"]
    # search/email already led to the day-46 conversion: only social is new for day 55.
    assert conv.loc[("u1", day(55)), "channels"] == ["social"]
    # u3's only touch comes after the conversion: the conversion has no touch.
    assert conv.loc[("u3", day(1)), "channels"] == [NO_TOUCH]
    null = paths[~paths["converted"]].set_index("person_id")["channels"].to_dict()
    assert null == {"u1": ["display"], "u2": ["ads"], "u3": ["x"]}


def test_build_paths_when_no_conversion_has_a_touch():
    # every conversion lacks a touch in its window: the path lists are all filled with NO_TOUCH
    # (the list column used to be float64 when empty, and filling it raised a TypeError)
    touches = pd.DataFrame({"person_id": ["u1"], "timestamp": [day(0)], "channel": ["ads"]})
    conversions = pd.DataFrame({"person_id": ["u2", "u1"], "timestamp": [day(1), day(90)], "value": [5.0, 7.0]})
    paths = build_paths(touches, conversions, lookback_days=30)
    conv = paths[paths["converted"]].set_index("person_id")
    assert conv["channels"].to_dict() == {"u1": [NO_TOUCH], "u2": [NO_TOUCH]}
    assert conv.loc["u2", "touch_times"] == [day(1)]
    assert paths.loc[~paths["converted"], "channels"].tolist() == []
    credit = attribute(paths, "linear")
    assert credit["conversions"].sum() == 2 and credit["channel"].tolist() == [NO_TOUCH]


def random_paths(n: int, seed: int) -> pd.DataFrame:
    """Seeded journeys over four channels with planted per-touch conversion probabilities."""
    rng = np.random.default_rng(seed)
    channels = np.array(["search", "social", "email", "display"])
    p_conv = {"search": 0.25, "social": 0.05, "email": 0.15, "display": 0.02}
    spec = []
    for _ in range(n):
        path = list(rng.choice(channels, rng.integers(1, 5), p=[0.3, 0.3, 0.2, 0.2]))
        converted = rng.random() < 1 - np.prod([1 - p_conv[c] for c in path])
        spec.append((">".join(path), bool(converted)))
    return make_paths(spec)


def paths_by_groupby(touches, conversions, lookback_days=30):
    """The oracle: build_paths' rule step by step, each path's lists by pandas' groupby(...).agg(list)."""
    window = pd.Timedelta(days=lookback_days)
    t = touches.rename(columns={"timestamp": "ts"}).sort_values(["person_id", "ts"], kind="stable", ignore_index=True)
    c = conversions.rename(columns={"timestamp": "conversion_time"})
    c = c.sort_values(["person_id", "conversion_time"], kind="stable", ignore_index=True)
    c["conv_id"] = np.arange(len(c))
    c["previous_conversion"] = c.groupby("person_id")["conversion_time"].shift()
    j = c.merge(t, on="person_id", how="left")
    keep = (j["ts"] <= j["conversion_time"]) & (j["ts"] >= j["conversion_time"] - window)
    j = j[keep & (j["previous_conversion"].isna() | (j["ts"] > j["previous_conversion"]))]
    lists = j.groupby("conv_id").agg(channels=("channel", list), touch_times=("ts", list))
    conv = c.join(lists, on="conv_id")
    # a purchase without a touch: its one (none) touch at its time (built as lists: with no touch at all
    # the joined columns are floats, into which `.at` wrote the list's element, not the list: seed 27)
    untouched = [not isinstance(x, list) for x in conv["channels"]]
    conv["channels"] = [[NO_TOUCH] if u else x for u, x in zip(untouched, conv["channels"])]
    conv["touch_times"] = [[t] if u else x for u, x, t in zip(untouched, conv["touch_times"], conv["conversion_time"])]
    conv["converted"] = True
    n = t.join(c.groupby("person_id")["conversion_time"].max().rename("last"), on="person_id")
    n = n[n["last"].isna() | (n["ts"] > n["last"])]
    n = n[n["ts"] >= n.groupby("person_id")["ts"].transform("max") - window]
    null = n.groupby("person_id").agg(channels=("channel", list), touch_times=("ts", list)).reset_index()
    null["converted"], null["conversion_time"], null["value"] = False, pd.NaT, 0.0
    cols = ["person_id", "converted", "conversion_time", "value", "channels", "touch_times"]
    return pd.concat([conv[cols], null[cols]], ignore_index=True)


def seeded_journeys(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Touches and purchases of a few persons: repeated times, persons without either, none at all."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(0, 300)), int(rng.integers(0, 40))
    persons = ["b", "a", "c", "d", "e"]
    touches = pd.DataFrame(
        {
            "person_id": pd.Series(rng.choice(persons[:4], n), dtype="str"),
            "timestamp": T0 + pd.to_timedelta(rng.integers(0, 90, n), unit="D"),
            "channel": pd.Series(rng.choice(["x/y", "direct", "z"], n), dtype="str"),
        }
    )
    conversions = pd.DataFrame(
        {
            "person_id": pd.Series(rng.choice(persons, m), dtype="str"),
            "timestamp": T0 + pd.to_timedelta(rng.integers(0, 90, m), unit="D"),
            "value": rng.integers(1, 50, m).astype(float),
        }
    )
    return touches, conversions


@pytest.mark.parametrize("seed", range(8))
def test_build_paths_equals_the_groupby_lists(seed):
    # build_paths cuts path_touches' flat touches by offsets; the oracle groups with pandas' own
    # groupby(...).agg(list): the same paths, in the same order, the same lists of the same types
    touches, conversions = seeded_journeys(seed)
    if seed == 0:  # no purchase: only paths that did not convert
        conversions = conversions.iloc[:0]
    if seed == 1:  # no touch at all: every purchase's path is its one (none) touch
        touches = touches.iloc[:0]
    got, want = build_paths(touches, conversions), paths_by_groupby(touches, conversions)
    pd.testing.assert_frame_equal(
        got.drop(columns=["channels", "touch_times"]), want.drop(columns=["channels", "touch_times"])
    )
    for col in ("channels", "touch_times"):
        for a, b in zip(got[col], want[col], strict=True):
            assert a == b and [type(v) for v in a] == [type(v) for v in b]


@pytest.mark.parametrize("seed", range(8))
def test_channel_paths_table_equals_build_paths(seed):
    # the mart's paths (an Arrow table, its lists built from offsets) hold build_paths' paths
    from models.marts.channel_attribution import PATH_COLUMNS, person_paths

    touches, conversions = seeded_journeys(seed)
    if seed == 0:  # no session: every purchase without a touch
        touches = touches.iloc[:0]
    sessions = touches.rename(columns={"timestamp": "started_at"}).assign(
        utm_source=touches["channel"], utm_medium=None
    )
    got_touches, got = person_paths(sessions, conversions)
    want = build_paths(got_touches, conversions)
    want.insert(1, "path_no", want.groupby("person_id").cumcount())
    want = pa.Table.from_pandas(want[list(PATH_COLUMNS)], schema=pa.schema(PATH_COLUMNS), preserve_index=False)
    assert got.equals(want)


def test_every_model_credits_exactly_the_conversions_and_value():
    paths = random_paths(1500, seed=11)
    out = attribute(paths, "all")
    assert set(out["model"]) == set(MODELS)
    totals = out.groupby("model")[["conversions", "value"]].sum()
    n_conv = int(paths["converted"].sum())
    assert totals["conversions"].to_numpy() == pytest.approx(np.full(len(MODELS), n_conv))
    assert totals["value"].to_numpy() == pytest.approx(np.full(len(MODELS), 10.0 * n_conv))


def test_markov_agrees_with_channelattribution_package():
    try:
        import ChannelAttribution as ca
    except (ImportError, OSError) as exc:  # no wheel, or a C++ extension that failed to build
        pytest.skip(f"channelattribution not installable here: {exc}")
    paths = random_paths(3000, seed=3)
    agg = (
        paths.assign(path=paths["channels"].map(">".join))
        .groupby("path")["converted"]
        .agg(conv="sum", total="size")
        .reset_index()
    )
    agg["null"] = agg["total"] - agg["conv"]
    # ChannelAttribution simulates the chain; by default it cuts simulated journeys at the longest
    # observed path, which biases removal effects by up to ~8 % here. With max_step=100 and 1e6
    # simulations (convergence 1 %) it approaches the exact absorbing-chain solution we compute.
    res = ca.markov_model(
        agg,
        "path",
        "conv",
        var_null="null",
        out_more=True,
        verbose=False,
        flg_pro=False,
        max_step=100,
        nsim_start=1e6,
        conv_par=0.01,
        seed=0,
    )
    theirs = res["removal_effects"].set_index("channel_name")["removal_effect"]
    ours = markov_removal_effects(paths)
    # 3 %: the package's simulation error at 1e6 draws and a 1 % convergence criterion.
    assert ours.to_numpy() == pytest.approx(theirs.reindex(ours.index).to_numpy(), rel=0.03)
    credited = attribute(paths, "markov").set_index("channel")["conversions"]
    their_credit = res["result"].set_index("channel_name")["total_conversions"]
    assert credited.to_numpy() == pytest.approx(their_credit.reindex(credited.index).to_numpy(), rel=0.03)


def test_no_conversions_credits_nothing():
    out = attribute(make_paths([("A>B", False), ("C", False)]), "all")
    assert out.empty and list(out.columns) == ["channel", "model", "conversions", "value"]
