"""The validator's timestamp parse (tracking_plan.validate._stamp) against the time-zone-aware cast
it shortcuts for UTC times: the same value, or the same NULL, for every combination of the parts
of an RFC 3339 date-time and their edge values."""

import itertools

import duckdb

from tracking_plan.formats import DATE_TIME
from tracking_plan.validate import _stamp, lit

PARTS = {
    "year": ["0000", "0001", "1969", "1970", "2000", "2024", "9999"],
    "month": ["00", "01", "02", "12", "13"],
    "day": ["00", "01", "28", "29", "30", "31", "32"],
    "sep": ["T", "t", " "],
    "time": ["00:00:00", "12:30:45", "23:59:59", "23:59:60", "24:00:00"],
    "fraction": ["", ".1", ".123", ".123456", ".1234567", ".999999999", ".000000000001"],
    "zone": ["Z", "z", "+00:00", "-05:30", "+14:00", ""],
}


def test_a_utc_time_parses_as_the_time_zone_aware_cast_does():
    values = [f"{y}-{m}-{d}{s}{t}{f}{z}" for y, m, d, s, t, f, z in itertools.product(*PARTS.values())]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create table v as select unnest(?::varchar[]) as x", [values])
    oracle = (
        f"case when regexp_matches(x, {lit(DATE_TIME)}) "
        "then coalesce(try_cast(x as timestamptz), try_cast(upper(x) as timestamptz))::timestamp end"
    )
    mine = _stamp("x").replace("_ts_shape", "false")
    n, parsed, utc, differ = con.execute(
        f"select count(*), count({oracle}), count(*) filter (where right(x, 1) = 'Z' and {oracle} is not null), "
        f"count(*) filter (where ({mine}) is distinct from ({oracle})) from v"
    ).fetchall()[0]
    assert n == len(values) and parsed > 10_000 and utc > 3_000  # (the grid reaches both paths)
    assert differ == 0, con.execute(
        f"select x, {mine}, {oracle} from v where ({mine}) is distinct from ({oracle}) limit 5"
    ).fetchall()
