-- one row per acquisition channel × subscription plan, plus a plan = 'all' row per channel. The channel
-- is the utm_source of the person's first session (staging.sessions), 'direct' without one; customers
-- are persons with a purchase event (staging.plan_settings.purchase_event), their plan that of their
-- first purchase. Revenue is monthly recurring: the latest purchase or renewal, annual billing / 12.
-- Monthly churn = churn events / customer-months at risk (first purchase to churn or end of data).
-- Spend (staging.marketing_costs) counts the months the data covers and is shared among a channel's
-- plans in proportion to their customers, so every row of a channel has the channel's CAC.
with settings as (
    select purchase_event, renewal_event, churn_event, gross_margin from staging.plan_settings
),

events as not materialized (
    select person_id, event_name, "timestamp" as event_at, properties
    from stitch.events
    where person_id is not null and "timestamp" is not null
),

first_sessions as (
    select person_id, coalesce(lower(utm_source), 'direct') as channel
    from staging.sessions
    where session_index = 1
),

-- purchases and renewals, each at its monthly revenue (an annual bill counts a twelfth per month)
billed as (
    select
        events.person_id,
        events.event_at,
        events.event_name,
        json_extract_string(events.properties, '$.plan') as plan,
        try_cast(json_extract_string(events.properties, '$.revenue') as double)
            / case json_extract_string(events.properties, '$.billing_period') when 'annual' then 12 else 1 end
            as monthly_revenue
    from events
    inner join settings on events.event_name in (settings.purchase_event, settings.renewal_event)
),

purchases as (
    select billed.person_id, billed.event_at, billed.plan, billed.monthly_revenue
    from billed inner join settings on billed.event_name = settings.purchase_event
),

renewals as (
    select billed.person_id, billed.event_at, billed.monthly_revenue
    from billed inner join settings on billed.event_name = settings.renewal_event
),

customers as (
    select
        person_id,
        min(event_at) as first_purchase_at,
        arg_min(coalesce(plan, 'unknown'), event_at) as plan
    from purchases
    group by person_id
),

latest_payment as (
    select person_id, arg_max(monthly_revenue, event_at) as mrr
    from (
        select person_id, event_at, monthly_revenue from purchases
        union all
        select person_id, event_at, monthly_revenue from renewals
    ) as payments
    where monthly_revenue is not null
    group by person_id
),

churns as (
    select events.person_id, min(events.event_at) as churned_at
    from events
    inner join settings on events.event_name = settings.churn_event
    inner join customers on customers.person_id = events.person_id
    where events.event_at >= customers.first_purchase_at
    group by events.person_id
),

-- the per-person part (kept between runs, pipelines/stitch/person_marts.py): one row per customer,
-- nothing in it depends on other persons or on the end of the data
customer_facts as (
    select
        customers.person_id,
        coalesce(first_sessions.channel, 'direct') as channel,
        customers.plan,
        latest_payment.mrr,
        customers.first_purchase_at,
        churns.churned_at
    from customers
    left join first_sessions on first_sessions.person_id = customers.person_id
    left join latest_payment on latest_payment.person_id = customers.person_id
    left join churns on churns.person_id = customers.person_id
),

observed as (
    select min(event_at) as observed_from, max(event_at) as observed_until from events
),

customer_months as (
    select
        customer_facts.person_id,
        customer_facts.channel,
        customer_facts.plan,
        customer_facts.mrr,
        customer_facts.churned_at is not null as churned,
        -- months at risk: 30.4375 days = the mean Gregorian month
        date_diff('second', customer_facts.first_purchase_at, coalesce(customer_facts.churned_at, observed.observed_until))
            / 86400.0 / 30.4375 as months_at_risk
    from customer_facts
    cross join observed
),

channel_spend as (
    select marketing_costs.channel, sum(marketing_costs.spend) as spend
    from staging.marketing_costs as marketing_costs
    cross join observed
    where marketing_costs.month between date_trunc('month', observed.observed_from)::date
                                    and date_trunc('month', observed.observed_until)::date
    group by marketing_costs.channel
),

segments as (
    select
        channel,
        coalesce(plan, 'all') as plan,
        count(*) as customers,
        avg(mrr) as arpu_monthly,
        count(*) filter (where churned) as churned_customers,
        sum(months_at_risk) as customer_months
    from customer_months
    group by grouping sets ((channel, plan), (channel))
),

channel_customers as (
    select channel, customers as channel_customers from segments where plan = 'all'
),

valued as (
    select
        segments.channel,
        segments.plan,
        segments.customers,
        coalesce(channel_spend.spend, 0) * segments.customers / channel_customers.channel_customers as spend,
        segments.arpu_monthly,
        settings.gross_margin,
        segments.churned_customers,
        segments.customer_months,
        case when segments.customer_months > 0 then segments.churned_customers / segments.customer_months end
            as monthly_churn
    from segments
    cross join settings
    inner join channel_customers on channel_customers.channel = segments.channel
    left join channel_spend on channel_spend.channel = segments.channel
),

unit_economics as (
    select
        *,
        spend / customers as cac,
        case when monthly_churn > 0 then arpu_monthly * gross_margin / monthly_churn end as clv
    from valued
)

select
    channel,
    plan,
    customers,
    spend,
    cac,
    arpu_monthly,
    gross_margin,
    churned_customers,
    customer_months,
    monthly_churn,
    clv,
    case when cac > 0 then clv / cac end as clv_cac_ratio,
    case when arpu_monthly * gross_margin > 0 then cac / (arpu_monthly * gross_margin) end as payback_months
from unit_economics
order by channel, plan
