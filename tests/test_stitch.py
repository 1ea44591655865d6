"""Identity stitching per identity.yaml (issue 3, item 4): shared computers, alias, events before
identify, max_per_person. All scenarios share one small landing zone with disjoint ids."""

import datetime as dt

import pytest
from support.pipeline import (
    BASE,
    DAY,
    ev,
    ingest,
    plan,
    query,
    stitch_and_sessions,
    write_lines,
)

from pipelines.warehouse import keyed_hash

T = dt.timedelta


def _scenarios() -> list[dict]:
    at = lambda minutes: BASE + T(minutes=minutes)
    out = [
        # shared computer: Ann logs in on the family laptop, later Ben does; both browse anonymously between
        ev(type="page", anon="laptop", at=at(0), props={"path": "/"}),
        ev(type="identify", user="ann", anon="laptop", at=at(5)),
        ev(user="ann", anon="ann-phone", at=at(6)),
        ev(type="page", anon="laptop", at=at(60), props={"path": "/pricing"}),
        ev(type="identify", user="ben", anon="laptop", at=at(120)),
        ev(type="page", anon="laptop", at=at(200), props={"path": "/docs"}),
        # events before identify: Cat browses, then signs up on the same device
        ev(type="page", anon="cat-device", at=at(0), props={"path": "/landing"}),
        ev(type="page", anon="cat-device", at=at(1), props={"path": "/signup"}),
        ev(type="identify", user="cat", anon="cat-device", at=at(2), traits={"email": "cat@example.com"}),
        # alias: a device id aliased to a user id merges them; a user id aliased to another user id
        # would put two user ids in one person (max_per_person 1) and is refused
        ev(type="page", anon="dan-old-device", at=at(0), props={"path": "/"}),
        ev(type="alias", anon=None, user="dan", previousId="dan-old-device", at=at(3)),
        ev(user="dan", anon="dan-new", at=at(4)),
        ev(user="dan-legacy", anon="dan-legacy-device", at=at(1)),
        ev(type="alias", anon=None, user="dan", previousId="dan-legacy", at=at(5)),
        # max_per_person: eve used four emails; email allows three per person
        *[
            ev(type="identify", user="eve", anon="eve-device", at=at(10 * i), traits={"email": f"eve{i}@example.com"})
            for i in range(4)
        ],
    ]
    return out


@pytest.fixture(scope="module")
def stitched(tmp_path_factory):
    root = tmp_path_factory.mktemp("stitch")
    landing, w = root / "landing", root / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", _scenarios())
    res = ingest(w, landing)
    assert res.quarantined == 0, query(w, "select reasons from ingest.quarantine")
    stats = stitch_and_sessions(w)
    return w, stats


def _pid(w, kind: str, ident: str) -> str:
    rows = query(w, "select person_id from stitch.persons where identifier_kind = ? and identifier = ?", [kind, ident])
    assert len(rows) == 1, (kind, ident, rows)
    return rows[0][0]


def test_shared_computer_keeps_users_apart_and_gives_device_to_latest(stitched):
    w, _ = stitched
    ann, ben, laptop = _pid(w, "user_id", "ann"), _pid(w, "user_id", "ben"), _pid(w, "anonymous_id", "laptop")
    assert ann != ben
    assert laptop == ben  # identity.yaml anonymous_events: latest
    assert _pid(w, "anonymous_id", "ann-phone") == ann
    # every anonymous laptop event, even the one from before Ann logged in, is the latest user's
    rows = query(w, "select distinct person_id from stitch.events where anonymous_id = 'laptop' and user_id is null")
    assert rows == [(ben,)]
    # Ann's own identify keeps her, although it was sent from the laptop
    assert query(w, "select person_id from stitch.events where user_id = 'ann' and type = 'identify'") == [(ann,)]
    rejected = query(w, "select id_b, reason from stitch.identity_graph where not accepted and id_a in ('ann', 'ben')")
    assert rejected == [("laptop", "would exceed max_per_person for user_id")]


def test_anonymous_events_first_gives_device_to_first_user(stitched, tmp_path):
    import shutil

    w, _ = stitched
    copy = tmp_path / "w.duckdb"
    shutil.copy(w, copy)
    first = plan().model_copy(deep=True)
    first.identity.anonymous_events = "first"
    stitch_and_sessions(copy, first)
    assert _pid(copy, "anonymous_id", "laptop") == _pid(copy, "user_id", "ann")
    assert _pid(copy, "user_id", "ann") != _pid(copy, "user_id", "ben")


def test_events_before_identify_get_the_person(stitched):
    w, _ = stitched
    cat = _pid(w, "user_id", "cat")
    rows = query(
        w,
        "select page_path, person_id from stitch.events where anonymous_id = 'cat-device' "
        "and type = 'page' order by \"timestamp\"",
    )
    assert rows == [("/landing", cat), ("/signup", cat)]
    assert _pid(w, "email", keyed_hash("cat@example.com")) == cat  # the hashed email joins the person too
    sessions = query(w, "select event_count, landing_page from staging.sessions where person_id = ?", [cat])
    assert sessions == [(3, "/landing")]


def test_alias_merges_device_but_not_two_user_ids(stitched):
    w, _ = stitched
    dan = _pid(w, "user_id", "dan")
    assert _pid(w, "anonymous_id", "dan-old-device") == dan
    assert _pid(w, "anonymous_id", "dan-new") == dan
    assert _pid(w, "user_id", "dan-legacy") != dan
    via = query(
        w,
        "select via, accepted from stitch.identity_graph where id_a in ('dan-old-device', 'dan-legacy') "
        "and id_b = 'dan' order by id_a",
    )
    assert via == [("alias", False), ("alias", True)]  # dan-legacy refused, dan-old-device merged


def test_max_per_person_keeps_the_latest_identifiers(stitched):
    w, _ = stitched
    eve = _pid(w, "user_id", "eve")
    emails = {i: _pid(w, "email", keyed_hash(f"eve{i}@example.com")) for i in range(4)}
    assert [emails[i] == eve for i in range(4)] == [False, True, True, True]
    assert query(w, "select count(*) from stitch.persons where person_id = ? and identifier_kind = 'email'", [eve]) == [
        (3,)
    ]


def test_every_event_has_a_person_and_rebuild_is_stable(stitched, tmp_path):
    import shutil

    w, stats = stitched
    assert query(w, "select count(*) from stitch.events where person_id is null") == [(0,)]
    assert query(w, "select count(*) from stitch.events") == query(w, "select count(*) from ingest.events")
    copy = tmp_path / "again.duckdb"
    shutil.copy(w, copy)
    assert stitch_and_sessions(copy) == stats
    snap = "select identifier_kind, identifier, person_id from stitch.persons order by all"
    assert query(copy, snap) == query(w, snap)
