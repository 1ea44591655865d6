-- one row per funnel × step of the plan's funnels (staging.plan_funnel_steps). Ordered funnel, as
-- PostHog computes it: every occurrence of step 1 starts an attempt; each next step is the first event
-- of that step at or after the previous step (never the same event) and at most window_hours after the
-- attempt's start. An exclusion event strictly between its from_step and to_step (or, if to_step was
-- not reached, between from_step and the end of the window) voids the attempt. A person's result is
-- their furthest step over valid attempts (earliest such attempt for the timings); a person without
-- a valid attempt counts nowhere, not even at step 1.
with recursive steps as (
    select funnel, step_index, event_name from staging.plan_funnel_steps
),

funnels as (
    select funnel, window_hours, step_count from staging.plan_funnels
),

exclusions as (
    select funnel, event_name, from_step, to_step from staging.plan_funnel_exclusions
),

events as (
    select
        person_id,
        event_name,
        "timestamp" as event_at,
        row_number() over (partition by person_id order by "timestamp", message_id) as seq
    from stitch.events
    where person_id is not null and "timestamp" is not null
      -- only the events a funnel reads, its steps' and its exclusions': seq orders them among
      -- themselves, which is all it is used for (numbering every event cost 10 of 10 CPU-s at 10M)
      and event_name in (select event_name from steps union select event_name from exclusions)
),

step_events as (
    select steps.funnel, steps.step_index, events.person_id, events.event_at, events.seq
    from events
    inner join steps on steps.event_name = events.event_name
),

-- the first event of step k + 1 at or after each step-k event (never the same event): an attempt at
-- that event goes on to it if it falls within the attempt's window (the first is the only candidate,
-- every later one is later still). Computed once here, so the recursion below only follows links.
successors as (
    select funnel, person_id, step_index, seq, next_at, next_seq
    from (
        select
            current_step.funnel,
            current_step.person_id,
            current_step.step_index,
            current_step.seq,
            next_step.event_at as next_at,
            next_step.seq as next_seq,
            row_number() over (
                partition by current_step.funnel, current_step.person_id, current_step.step_index, current_step.seq
                order by next_step.event_at, next_step.seq
            ) as nth
        from step_events as current_step
        inner join step_events as next_step
            on next_step.funnel = current_step.funnel
            and next_step.person_id = current_step.person_id
            and next_step.step_index = current_step.step_index + 1
            and next_step.event_at >= current_step.event_at
            and next_step.seq <> current_step.seq
    ) as ranked
    where nth = 1
),

attempts (funnel, person_id, start_seq, started_at, window_ends_at, step_count, step_index, step_at, step_seq) as (
    select
        step_events.funnel,
        step_events.person_id,
        step_events.seq,
        step_events.event_at,
        step_events.event_at + to_seconds(funnels.window_hours * 3600),
        funnels.step_count,
        1,
        step_events.event_at,
        step_events.seq
    from step_events
    inner join funnels on funnels.funnel = step_events.funnel
    where step_events.step_index = 1

    union all

    select
        attempts.funnel,
        attempts.person_id,
        attempts.start_seq,
        attempts.started_at,
        attempts.window_ends_at,
        attempts.step_count,
        attempts.step_index + 1,
        successors.next_at,
        successors.next_seq
    from attempts
    inner join successors
        on successors.funnel = attempts.funnel
        and successors.person_id = attempts.person_id
        and successors.step_index = attempts.step_index
        and successors.seq = attempts.step_seq
    where attempts.step_index < attempts.step_count
      and successors.next_at <= attempts.window_ends_at
),

exclusion_spans as (
    select
        attempts.funnel,
        attempts.person_id,
        attempts.start_seq,
        exclusions.event_name,
        max(case when attempts.step_index = exclusions.from_step then attempts.step_at end) as span_from,
        max(case when attempts.step_index = exclusions.to_step then attempts.step_at end) as span_to,
        max(attempts.window_ends_at) as window_ends_at
    from attempts
    inner join exclusions on exclusions.funnel = attempts.funnel
    group by attempts.funnel, attempts.person_id, attempts.start_seq, exclusions.event_name,
        exclusions.from_step, exclusions.to_step
),

voided as (
    select distinct exclusion_spans.funnel, exclusion_spans.person_id, exclusion_spans.start_seq
    from exclusion_spans
    inner join events
        on events.person_id = exclusion_spans.person_id
        and events.event_name = exclusion_spans.event_name
    where exclusion_spans.span_from is not null
      and events.event_at > exclusion_spans.span_from
      and (
          (exclusion_spans.span_to is not null and events.event_at < exclusion_spans.span_to)
          or (exclusion_spans.span_to is null and events.event_at <= exclusion_spans.window_ends_at)
      )
),

valid_attempts as (
    select attempts.funnel, attempts.person_id, attempts.start_seq, attempts.started_at,
           max(attempts.step_index) as furthest_step
    from attempts
    left join voided
        on voided.funnel = attempts.funnel
        and voided.person_id = attempts.person_id
        and voided.start_seq = attempts.start_seq
    where voided.start_seq is null
    group by attempts.funnel, attempts.person_id, attempts.start_seq, attempts.started_at
),

best_attempts as (
    select funnel, person_id, start_seq, furthest_step
    from valid_attempts
    qualify row_number() over (partition by funnel, person_id order by furthest_step desc, started_at, start_seq) = 1
),

person_steps as (
    select
        attempts.funnel,
        attempts.person_id,
        attempts.step_index,
        date_diff('millisecond', lag(attempts.step_at) over w, attempts.step_at) / 3600000.0 as hours_from_previous,
        date_diff('millisecond', attempts.started_at, attempts.step_at) / 3600000.0 as hours_from_start
    from attempts
    inner join best_attempts
        on best_attempts.funnel = attempts.funnel
        and best_attempts.person_id = attempts.person_id
        and best_attempts.start_seq = attempts.start_seq
    window w as (partition by attempts.funnel, attempts.person_id order by attempts.step_index)
),

step_counts as (
    select
        funnel,
        step_index,
        count(*) as persons,
        median(hours_from_previous) as median_hours_from_previous,
        median(hours_from_start) as median_hours_from_start
    from person_steps
    group by funnel, step_index
),

funnel_steps as (
    select
        steps.funnel,
        steps.step_index,
        steps.event_name,
        funnels.window_hours,
        coalesce(step_counts.persons, 0) as persons,
        step_counts.median_hours_from_previous,
        step_counts.median_hours_from_start
    from steps
    inner join funnels on funnels.funnel = steps.funnel
    left join step_counts on step_counts.funnel = steps.funnel and step_counts.step_index = steps.step_index
),

with_neighbours as (
    select
        *,
        lag(persons) over w as previous_persons,
        lead(persons) over w as next_persons,
        first_value(persons) over w as entered_funnel
    from funnel_steps
    window w as (partition by funnel order by step_index)
)

select
    funnel,
    step_index,
    event_name,
    persons,
    next_persons as converted_to_next,
    persons - coalesce(next_persons, persons) as dropped_off,
    case when step_index = 1 then 1.0 when previous_persons > 0 then persons / previous_persons end as step_conversion,
    case when entered_funnel > 0 then persons / entered_funnel end as overall_conversion,
    median_hours_from_previous,
    median_hours_from_start,
    window_hours
from with_neighbours
order by funnel, step_index
