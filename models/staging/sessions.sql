-- one row per session: a person's run of events with no gap longer than the session timeout
-- (getvariable('session_timeout_minutes'), 30 by default). A client session id (context.sessionId,
-- e.g. Snowplow's domain_sessionid) is the client's own session, already cut by its tracker's
-- timeout: its events stay one session, apart from other ids' events even when two interleave in
-- time, whatever their gaps; but no longer than getvariable('max_session_days') (3 by default, as
-- Snowplow's): later events of it are left out of sessions, as Snowplow quarantines them.
with events as (
    -- (whether an event is a page view, not its type's text: every column here is carried through
    -- both windows' sorts; 10M events, the model 17.1-18.9 -> 16.5-17.4 CPU-s, the same rows)
    select person_id, "timestamp", session_id as client_session_id, anonymous_id,
           page_path, page_referrer, utm_source, utm_medium, utm_campaign, type = 'page' as is_page
    from stitch.events
    where person_id is not null and "timestamp" is not null
),

-- Events at the same instant have no order among themselves: the gap before an instant is carried by
-- one of its rows (any one), and the runs are numbered over a RANGE frame, which counts every row of
-- an instant alike, so an instant is never split between two runs. (A messageId tie-breaker in both
-- windows gave the same sessions at ~15% more CPU: it is a string in each sort key.)
gaps as (
    select *,
        lag("timestamp") over w as previous_at,
        -- a client session is one run (below), so its start is its first event's time: taken over
        -- this same window rather than a third one (each window sorts every event again: with client
        -- session ids, the model ~25% less CPU, the same rows)
        min("timestamp") over w as run_start
    from events
    window w as (partition by person_id, client_session_id order by "timestamp")
),

flagged as (
    select *,
        case
            when previous_at is null then 1
            when client_session_id is not null then 0
            when "timestamp" > previous_at + to_minutes(coalesce(getvariable('session_timeout_minutes'), 30)::bigint) then 1
            else 0
        end as is_new_session
    from gaps
),

numbered as (
    select *,
        sum(is_new_session) over (partition by person_id, client_session_id order by "timestamp" nulls first
                                  range between unbounded preceding and current row) as run_index
    from flagged
),

capped as (
    select * from numbered
    where client_session_id is null
       or "timestamp" <= run_start + to_days(coalesce(getvariable('max_session_days'), 3)::integer)
),

runs as (
    select
        person_id,
        client_session_id,
        run_index,
        min("timestamp") as started_at,
        max("timestamp") as ended_at,
        count(*) as event_count,
        count(*) filter (where is_page) as page_views,
        arg_min(page_path, "timestamp") filter (where page_path is not null) as landing_page,
        arg_min(page_referrer, "timestamp") filter (where page_referrer is not null) as referrer,
        arg_min(utm_source, "timestamp") filter (where utm_source is not null) as utm_source,
        arg_min(utm_medium, "timestamp") filter (where utm_medium is not null) as utm_medium,
        arg_min(utm_campaign, "timestamp") filter (where utm_campaign is not null) as utm_campaign,
        arg_min(anonymous_id, "timestamp") filter (where anonymous_id is not null) as anonymous_id,
    from capped
    group by person_id, client_session_id, run_index
),

sessions as (
    select *,
        row_number() over (partition by person_id
                           order by started_at, ended_at, client_session_id nulls first, run_index) as session_index
    from runs
)

select
    'sess_' || substr(sha256(person_id || '|' || session_index::varchar), 1, 16) as session_id,
    person_id,
    session_index,
    started_at,
    ended_at,
    date_diff('second', started_at, ended_at) as duration_seconds,
    event_count,
    page_views,
    landing_page,
    referrer,
    utm_source,
    utm_medium,
    utm_campaign,
    anonymous_id,
    client_session_id
from sessions
