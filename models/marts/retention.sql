-- one row per period type (day, week) × cohort × period offset: Amplitude-style N-period retention
-- (active in exactly period N) and unbounded retention (active in period N or any later one).
-- Periods are UTC calendar buckets, weeks start Monday. Cohorts follow staging.plan_settings:
-- retention_type 'first_time' puts each person in the bucket of their first target event ever;
-- 'recurring' (PostHog's default) puts them in every bucket where they did the target event. A null
-- target or returning event means any event. The observed window defaults to the data's first and last
-- event; the session variables retention_from / retention_to narrow it (events outside are ignored).
with settings as (
    select retention_type, retention_target_event, retention_returning_event
    from staging.plan_settings
),

events as (
    -- one row per person, UTC day and what the events of that day are to the cohorts (a target event,
    -- a returning one): every bucket (day, week) and bound is a function of the day, and each use below
    -- is a min, a max or a distinct, so this is exact. Grouping and carrying two booleans rather than
    -- the event name keeps the per-period rows small: at 10M events they spilled under the
    -- warehouse's memory budget (benchmarks in the commit)
    select distinct
        person_id,
        "timestamp"::date as event_day,
        settings.retention_target_event is null or event_name = settings.retention_target_event as is_target,
        settings.retention_returning_event is null or event_name = settings.retention_returning_event as is_returning
    from stitch.events
    cross join settings
    where person_id is not null and "timestamp" is not null
),

period_types as (
    select period_type from (values ('day'), ('week')) as period_types (period_type)
),

bounds as (
    select
        period_types.period_type,
        date_trunc(period_types.period_type, coalesce(getvariable('retention_from')::timestamp, min(events.event_day)::timestamp))::date as first_bucket,
        date_trunc(period_types.period_type, coalesce(getvariable('retention_to')::timestamp, max(events.event_day)::timestamp))::date as last_bucket
    from period_types
    cross join events
    group by period_types.period_type
),

bucketed as (
    select
        bounds.period_type,
        events.person_id,
        events.is_target,
        events.is_returning,
        date_trunc(bounds.period_type, events.event_day)::date as bucket,
        bounds.first_bucket,
        bounds.last_bucket
    from events
    cross join bounds
),

first_targets as (
    -- first target event ever, even before the window: a person seen earlier is not new
    select bucketed.period_type, bucketed.person_id, min(bucketed.bucket) as first_bucket
    from bucketed
    where bucketed.is_target
    group by bucketed.period_type, bucketed.person_id
),

in_window as (
    select * from bucketed
    where bucket between first_bucket and last_bucket
),

cohort_members as (
    select distinct in_window.period_type, in_window.person_id, in_window.bucket as cohort_start
    from in_window
    cross join settings
    inner join first_targets
        on first_targets.period_type = in_window.period_type and first_targets.person_id = in_window.person_id
    where in_window.is_target
      and (settings.retention_type = 'recurring' or in_window.bucket = first_targets.first_bucket)
),

activity as (
    select distinct in_window.period_type, in_window.person_id, in_window.bucket
    from in_window
    where in_window.is_returning
),

returns as (
    select
        cohort_members.period_type,
        cohort_members.cohort_start,
        cohort_members.person_id,
        case cohort_members.period_type
            when 'day' then date_diff('day', cohort_members.cohort_start, activity.bucket)
            else date_diff('day', cohort_members.cohort_start, activity.bucket) // 7
        end as period
    from cohort_members
    inner join activity
        on activity.period_type = cohort_members.period_type
        and activity.person_id = cohort_members.person_id
        and activity.bucket > cohort_members.cohort_start
),

-- the per-person part (kept between runs, pipelines/stitch/person_marts.py): one row per cohort
-- member and period they were active in, period 0 being the cohort itself (every member)
member_periods as (
    select period_type, cohort_start, person_id, 0 as period from cohort_members
    union all
    select period_type, cohort_start, person_id, period from returns
),

member_last_return as (
    -- a member counts as retained-unbounded at every period up to their last return
    select period_type, cohort_start, person_id, max(period) as last_period
    from member_periods
    group by period_type, cohort_start, person_id
),

exact_counts as (
    select period_type, cohort_start, period, count(*) as retained
    from member_periods
    group by period_type, cohort_start, period
),

unbounded_counts as (
    select period_type, cohort_start, period, count(*) as retained_unbounded
    from (
        select period_type, cohort_start, unnest(range(0, last_period + 1)) as period
        from member_last_return
    ) as reached
    group by period_type, cohort_start, period
),

-- the per-cohort part (kept, recomputed for the cohorts a run's persons are or were in): one row per
-- cohort and period up to its members' last return; period 0 counts the members (the cohort size)
cohort_counts as (
    select
        unbounded_counts.period_type,
        unbounded_counts.cohort_start,
        unbounded_counts.period,
        coalesce(exact_counts.retained, 0) as retained,
        unbounded_counts.retained_unbounded
    from unbounded_counts
    left join exact_counts
        on exact_counts.period_type = unbounded_counts.period_type
        and exact_counts.cohort_start = unbounded_counts.cohort_start
        and exact_counts.period = unbounded_counts.period
),

cohorts as (
    select
        cohort_counts.period_type,
        cohort_counts.cohort_start,
        cohort_counts.retained as cohort_size,
        case cohort_counts.period_type
            when 'day' then date_diff('day', cohort_counts.cohort_start, bounds.last_bucket)
            else date_diff('day', cohort_counts.cohort_start, bounds.last_bucket) // 7
        end as last_period
    from cohort_counts
    inner join bounds on bounds.period_type = cohort_counts.period_type
    where cohort_counts.period = 0
),

grid as (
    select cohorts.period_type, cohorts.cohort_start, cohorts.cohort_size, periods.period
    from cohorts
    cross join lateral (select unnest(range(0, cohorts.last_period + 1)) as period) as periods
)

select
    grid.period_type,
    grid.cohort_start,
    grid.period,
    case grid.period_type
        when 'day' then grid.cohort_start + grid.period::integer
        else grid.cohort_start + 7 * grid.period::integer
    end as period_start,
    grid.cohort_size,
    -- period 0 is the cohort itself: everyone in it was active then, by definition
    coalesce(cohort_counts.retained, 0) as retained,
    coalesce(cohort_counts.retained_unbounded, 0) as retained_unbounded,
    coalesce(cohort_counts.retained, 0) / grid.cohort_size as retention_rate,
    coalesce(cohort_counts.retained_unbounded, 0) / grid.cohort_size as unbounded_retention_rate
from grid
left join cohort_counts
    on cohort_counts.period_type = grid.period_type
    and cohort_counts.cohort_start = grid.cohort_start
    and cohort_counts.period = grid.period
order by grid.period_type, grid.cohort_start, grid.period
