-- Deliveries of the impressions accepted in the period, per offer and destination:
-- what became of each impression (its latest attempt), attempts and latency.
WITH attempts AS (
    SELECT * FROM deliveries
    WHERE impression_ts >= $start AND impression_ts < $end
        AND (len($offers) = 0 OR list_contains($offers, offer_id))
        AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
        AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
),
latest AS (
    SELECT offer_id, destination, aimp_id, arg_max(outcome, attempt) AS outcome
    FROM attempts
    GROUP BY ALL
),
verdicts AS (
    SELECT
        offer_id,
        destination,
        count(*) AS impressions,
        count(*) FILTER (outcome = 'delivered') AS delivered,
        count(*) FILTER (outcome = 'retrying') AS retrying,
        count(*) FILTER (outcome = 'failed') AS failed,
        count(*) FILTER (outcome = 'dead_letter') AS dead_letter,
        count(*) FILTER (outcome = 'blocked') AS blocked
    FROM latest
    GROUP BY ALL
),
timing AS (
    SELECT
        offer_id,
        destination,
        count(*) AS attempts,
        round(avg(latency_ms), 1) AS avg_ms,
        round(quantile_cont(latency_ms, 0.95), 1) AS p95_ms
    FROM attempts
    GROUP BY ALL
)
SELECT
    v.offer_id,
    v.destination,
    v.impressions,
    v.delivered,
    round(100.0 * v.delivered / v.impressions, 2) AS delivered_pct,
    v.retrying,
    v.failed,
    v.dead_letter,
    v.blocked,
    t.attempts,
    t.avg_ms,
    t.p95_ms
FROM verdicts AS v
JOIN timing AS t USING (offer_id, destination)
