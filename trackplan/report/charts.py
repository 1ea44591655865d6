"""Charts of the KPI report: Vega-Altair specs rendered to inline SVG on the server.

vl-convert renders Vega-Lite without a browser or network, so the report is one HTML file that
opens offline (no CDN, no JavaScript) and looks the same in a PR artifact, an e-mail or a browser.
Each function takes a mart's DataFrame and returns an SVG string, or None when the columns it needs
are not there (the caller then shows the table).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

WIDTH = 560  # fits two charts side by side on a laptop screen, one on a phone


def col(df: pd.DataFrame, *names: str) -> str | None:
    """The first of ``names`` that is a column of ``df`` (marts are read by contract, defensively)."""
    for n in names:
        if n in df.columns:
            return n
    return None


def svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_json(), vl_version="5.20")


def activation(df: pd.DataFrame, target: float | None) -> str | None:
    """Activation by signup week; a cohort whose activation window is still open is drawn as such
    (hatched grey, labelled), not as a real drop."""
    x, y = col(df, "cohort_week", "cohort", "cohort_start"), col(df, "activation_rate")
    if not (x and y) or df.empty:
        return None
    complete = (
        df["window_complete"].astype(bool) if "window_complete" in df.columns else pd.Series(True, index=df.index)
    )
    d = df.assign(_x=df[x].astype(str).str[:10], cohort=complete.map({True: "complete", False: "window still open"}))
    bars = (
        alt.Chart(d)
        .mark_bar()
        .encode(
            x=alt.X("_x:O", title="signup week"),
            y=alt.Y(f"{y}:Q", title="activation rate", axis=alt.Axis(format="%")),
            color=alt.Color(
                "cohort:N",
                title=None,
                scale=alt.Scale(domain=["complete", "window still open"], range=["#4c78a8", "#c7ccd4"]),
            ),
            tooltip=["_x", "cohort", alt.Tooltip(f"{y}:Q", format=".1%")]
            + ([c for c in ("signups", "activated") if c in d]),
        )
    )
    layers = [bars]
    if target is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"t": [target]})).mark_rule(color="#e45756", strokeDash=[4, 3]).encode(y="t:Q")
        )
    return svg(alt.layer(*layers).properties(width=WIDTH - 90, height=220, title="Activation rate by signup week"))


def retention_heatmap(df: pd.DataFrame, data_end: str | None = None) -> str | None:
    """N-week retention; a cell whose week has not ended by the last day of data is partial and is
    drawn faded with its label in italics (its value can still rise)."""
    c, p, r = col(df, "cohort_start", "cohort_week", "cohort"), col(df, "period"), col(df, "retention_rate")
    if not (c and p and r) or df.empty:
        return None
    d = df
    if "period_type" in d.columns:
        d = (
            d[d["period_type"] == "week"]
            if (d["period_type"] == "week").any()
            else d[d["period_type"] == d["period_type"].iloc[0]]
        )
    partial = pd.Series(False, index=d.index)
    if data_end is not None and "period_start" in d.columns:
        partial = pd.to_datetime(d["period_start"]) + pd.Timedelta(days=7) > pd.Timestamp(data_end) + pd.Timedelta(
            days=1
        )
    d = d.assign(
        _c=d[c].astype(str).str[:10],
        _partial=partial.values,
        _label=[f"{v:.0%}" + ("*" if part else "") for v, part in zip(d[r], partial.values, strict=True)],
    )
    base = alt.Chart(d).encode(
        x=alt.X(f"{p}:O", title="weeks since signup (* week not over yet)"), y=alt.Y("_c:O", title="cohort")
    )
    # a fixed 0–100% domain: a cell's shade means the same in every report, and the label colour can
    # be chosen from the value (white only on the dark half of the scale)
    heat = base.mark_rect().encode(
        color=alt.Color(
            f"{r}:Q", title="retained", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=alt.Legend(format="%")
        ),
        opacity=alt.condition("datum._partial", alt.value(0.45), alt.value(1.0)),
        tooltip=["_c", p, alt.Tooltip(f"{r}:Q", format=".1%"), "_partial"],
    )
    text = base.mark_text(fontSize=9).encode(
        text="_label:N",
        color=alt.condition(f"datum.{r} > 0.6 && !datum._partial", alt.value("white"), alt.value("black")),
    )
    return svg(
        (heat + text).properties(
            width=WIDTH - 90, height=max(120, 18 * d["_c"].nunique()), title="Weekly retention (N-week, Amplitude)"
        )
    )


def funnel(df: pd.DataFrame, key: str) -> str | None:
    s, e, n = col(df, "step_index", "step"), col(df, "event_name", "step_name", "event"), col(df, "persons", "entered")
    if not (s and e and n) or df.empty:
        return None
    d = df.sort_values(s).assign(_label=lambda x: x[s].astype(str) + ". " + x[e].astype(str))
    conv = col(d, "overall_conversion")
    enc = {"tooltip": ["_label", n] + ([alt.Tooltip(f"{conv}:Q", format=".1%")] if conv else [])}
    bars = (
        alt.Chart(d)
        .mark_bar(color="#72b7b2")
        .encode(y=alt.Y("_label:N", sort=None, title=None), x=alt.X(f"{n}:Q", title="persons"), **enc)
    )
    return svg(bars.properties(width=WIDTH - 140, height=30 * len(d), title=f"Funnel: {key}"))


def grouped_bars(df: pd.DataFrame, group: str, measures: list[str], title: str, fmt: str = ",.0f") -> str | None:
    present = [m for m in measures if m in df.columns]
    if group not in df.columns or not present or df.empty:
        return None
    long = df[[group, *present]].melt(id_vars=group, var_name="measure", value_name="value")
    long[group] = long[group].astype(str)
    chart = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X(f"{group}:N", title=None),
            xOffset="measure:N",
            y=alt.Y("value:Q", title=None),
            color=alt.Color("measure:N", title=None),
            tooltip=[group, "measure", alt.Tooltip("value:Q", format=fmt)],
        )
    )
    return svg(chart.properties(width=WIDTH - 90, height=220, title=title))


def side_by_side(df: pd.DataFrame, group: str, measures: list[str], title: str, fmt: str = ",.0f") -> str | None:
    """One small bar chart per measure, each on its own axis: CAC (tens) stays readable beside CLV
    (thousands)."""
    present = [m for m in measures if m in df.columns]
    if group not in df.columns or not present or df.empty:
        return None
    width = max(120, (WIDTH - 60) // len(present) - 30)
    charts = [
        alt.Chart(df.assign(**{group: df[group].astype(str)}))
        .mark_bar(color=color)
        .encode(
            x=alt.X(f"{group}:N", title=None),
            y=alt.Y(f"{m}:Q", title=m, axis=alt.Axis(format=fmt)),
            tooltip=[group, alt.Tooltip(f"{m}:Q", format=fmt)],
        )
        .properties(width=width, height=200, title=m.upper())
        for m, color in zip(present, ["#4c78a8", "#f58518", "#54a24b"], strict=False)
    ]
    return svg(alt.hconcat(*charts).properties(title=title))


def ci_points(
    df: pd.DataFrame, label: list[str], est: str, lo: str, hi: str, title: str, fmt: str = ".1%"
) -> str | None:
    if not all(c in df.columns for c in [*label, est, lo, hi]) or df.empty:
        return None
    d = df.assign(_label=df[label].astype(str).agg(" · ".join, axis=1))
    base = alt.Chart(d).encode(y=alt.Y("_label:N", title=None, sort=None))
    rule = base.mark_rule(color="#4c78a8").encode(
        x=alt.X(f"{lo}:Q", title=f"{est} (95% CI)", axis=alt.Axis(format=fmt)), x2=f"{hi}:Q"
    )
    point = base.mark_point(filled=True, size=60, color="#4c78a8").encode(
        x=f"{est}:Q",
        tooltip=[
            "_label",
            alt.Tooltip(f"{est}:Q", format=fmt),
            alt.Tooltip(f"{lo}:Q", format=fmt),
            alt.Tooltip(f"{hi}:Q", format=fmt),
        ],
    )
    zero = alt.Chart(pd.DataFrame({"z": [0]})).mark_rule(color="#888", strokeDash=[3, 3]).encode(x="z:Q")
    return svg((rule + point + zero).properties(width=WIDTH - 160, height=max(60, 28 * len(d)), title=title))


def tornado(df: pd.DataFrame, initiative: str) -> str | None:
    p, lo, hi = col(df, "parameter", "name"), col(df, "npv_low"), col(df, "npv_high")
    if not (p and lo and hi) or df.empty:
        return None
    d = df.dropna(subset=[lo, hi])
    if d.empty:
        return None
    base_npv = float(d["npv"].iloc[0]) if "npv" in d.columns and pd.notna(d["npv"].iloc[0]) else None
    bars = (
        alt.Chart(d)
        .mark_bar(color="#f58518")
        .encode(
            y=alt.Y(f"{p}:N", sort=None, title=None),
            x=alt.X(f"{lo}:Q", title="NPV when the assumption moves low → high"),
            x2=f"{hi}:Q",
            tooltip=[p, alt.Tooltip(f"{lo}:Q", format=",.0f"), alt.Tooltip(f"{hi}:Q", format=",.0f")],
        )
    )
    layers = [bars]
    if base_npv is not None:
        layers.append(alt.Chart(pd.DataFrame({"b": [base_npv]})).mark_rule(color="black").encode(x="b:Q"))
    return svg(
        alt.layer(*layers).properties(width=WIDTH - 160, height=max(60, 26 * len(d)), title=f"Tornado: {initiative}")
    )


def npv_range(df: pd.DataFrame) -> str | None:
    i = col(df, "initiative")
    p10, p50, p90 = col(df, "npv_p10"), col(df, "npv_p50", "npv_mean", "npv"), col(df, "npv_p90")
    if not (i and p10 and p50 and p90) or df.empty:
        return None
    base = alt.Chart(df).encode(y=alt.Y(f"{i}:N", title=None, sort=None))
    band = base.mark_rule(strokeWidth=8, color="#9ecae9").encode(
        x=alt.X(f"{p10}:Q", title="NPV, Monte Carlo P10 – P90 (median marked)"), x2=f"{p90}:Q"
    )
    mid = base.mark_tick(color="#08519c", thickness=3, size=18).encode(
        x=f"{p50}:Q", tooltip=[i] + [alt.Tooltip(f"{c}:Q", format=",.0f") for c in (p10, p50, p90)]
    )
    zero = alt.Chart(pd.DataFrame({"z": [0]})).mark_rule(color="#e45756", strokeDash=[3, 3]).encode(x="z:Q")
    return svg(
        (band + mid + zero).properties(width=WIDTH - 160, height=max(60, 30 * len(df)), title="NPV distribution")
    )


def time_series(
    df: pd.DataFrame, x: str, y: str, title: str, color: str | None = None, fmt: str = ",.2f"
) -> str | None:
    if x not in df.columns or y not in df.columns or df.empty:
        return None
    d = df.assign(_x=pd.to_datetime(df[x]).dt.strftime("%Y-%m-%d"))
    enc = {"color": alt.Color(f"{color}:N", title=None)} if color and color in d.columns else {}
    # counts get whole-number ticks only (no 3, 3, 2, 2, 1, 1 from a rounded fractional axis)
    axis = alt.Axis(format=fmt, tickMinStep=1) if fmt in (",.0f", "d", ",d") else alt.Axis(format=fmt)
    chart = (
        alt.Chart(d)
        .mark_line(point=True)
        .encode(
            x=alt.X("_x:T", title=None),
            y=alt.Y(f"{y}:Q", title=None, axis=axis),
            tooltip=["_x", alt.Tooltip(f"{y}:Q", format=fmt)],
            **enc,
        )
    )
    return svg(chart.properties(width=WIDTH - 90, height=180, title=title))
