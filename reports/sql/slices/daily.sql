-- Daily slice from the UTC hourly rollups; $tz names the reporting timezone. Money
-- is CPM (per recorded impression) plus CPA (per approved conversion), per currency.
-- Conversions are counted by when they were created.
WITH counts AS (
    SELECT hour AS ts, currency, impressions, 0::BIGINT AS clicks, 0 AS conversions,
        0 AS approved, revenue, payout
    FROM impressions_hourly
    WHERE hour >= $start AND hour < $end
    UNION ALL
    SELECT hour, currency, 0, clicks, 0, 0, 0, 0
    FROM clicks_hourly
    WHERE hour >= $start AND hour < $end
    UNION ALL
    SELECT ts, currency, 0, 0, 1, (status = 1)::INTEGER,
        CASE WHEN status = 1 THEN revenue ELSE 0 END,
        CASE WHEN status = 1 THEN payout ELSE 0 END
    FROM conversions
    WHERE ts >= $start AND ts < $end
)
SELECT
    CAST(timezone($tz, ts) AS DATE)                              AS day,
    sum(impressions)::BIGINT                                     AS impressions,
    sum(clicks)::BIGINT                                          AS clicks,
    round(100.0 * sum(clicks) / nullif(sum(impressions), 0), 2) AS ctr_pct,
    sum(conversions)::BIGINT                                     AS conversions,
    sum(approved)::BIGINT                                        AS approved,
    currency,
    sum(revenue)::DECIMAL(18, 4)                                 AS revenue,
    sum(payout)::DECIMAL(18, 4)                                  AS payout,
    (sum(revenue) - sum(payout))::DECIMAL(18, 4)                 AS profit
FROM counts
GROUP BY day, currency
ORDER BY day, currency;
