-- one row per weekly signup cohort (weeks start Monday, UTC): persons whose first signup event fell in
-- the week, and how many reached activation_min_count activation events within activation_window_days
-- calendar days of signing up (day 0 = the signup day, so with 7 days an event on day 7 counts and one
-- on day 8 does not). Settings come from staging.plan_settings (metrics.yaml).
with settings as (
    select signup_event, activation_event, activation_window_days, activation_min_count
    from staging.plan_settings
),

events as not materialized (
    select person_id, message_id, event_name, "timestamp" as event_at
    from stitch.events
    where person_id is not null and "timestamp" is not null
),

signups as (
    select events.person_id, min(events.event_at) as signed_up_at
    from events
    inner join settings on events.event_name = settings.signup_event
    group by events.person_id
),

activation_events as (
    select
        signups.person_id,
        events.event_at,
        row_number() over (partition by signups.person_id order by events.event_at, events.message_id) as nth
    from signups
    inner join events on events.person_id = signups.person_id
    inner join settings on events.event_name = settings.activation_event
    where events.event_at >= signups.signed_up_at
      and date_diff('day', signups.signed_up_at::date, events.event_at::date) <= settings.activation_window_days
),

activations as (
    -- activation happens at the min_count-th qualifying event
    select activation_events.person_id, activation_events.event_at as activated_at
    from activation_events
    inner join settings on activation_events.nth = settings.activation_min_count
),

persons as (
    select
        signups.person_id,
        signups.signed_up_at,
        date_trunc('week', signups.signed_up_at)::date as cohort_week,
        activations.activated_at,
        date_diff('second', signups.signed_up_at, activations.activated_at) / 3600.0 as hours_to_activate
    from signups
    left join activations on activations.person_id = signups.person_id
),

observed as (
    select max(event_at) as observed_until from events
),

cohorts as (
    select
        cohort_week,
        count(*) as signups,
        count(activated_at) as activated,
        median(hours_to_activate) as median_hours_to_activate
    from persons
    group by cohort_week
)

select
    cohorts.cohort_week,
    cohorts.signups,
    cohorts.activated,
    cohorts.activated / cohorts.signups as activation_rate,
    cohorts.median_hours_to_activate,
    settings.activation_window_days,
    settings.activation_min_count,
    -- the cohort's last signup day plus the window has been observed: its rate will not rise any more
    cohorts.cohort_week + 6 + settings.activation_window_days <= observed.observed_until::date as window_complete
from cohorts
cross join settings
cross join observed
order by cohorts.cohort_week
