-- Daily slice from the rows themselves, for timezones whose offset is not a whole
-- number of hours (an hourly bucket would straddle their midnight).
WITH counts AS (
    SELECT ts, currency, 1 AS impressions, 0 AS clicks, 0 AS conversions, 0 AS approved,
        revenue, payout
    FROM impressions
    WHERE ts >= $start AND ts < $end
    UNION ALL
    SELECT ts, currency, 0, 1, 0, 0, 0, 0 FROM clicks WHERE ts >= $start AND ts < $end
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
