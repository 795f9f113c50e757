-- Rejections slice from the rows themselves, for timezones whose offset is not a
-- whole number of hours (reports/slices.py).
WITH rejected AS (
    SELECT reason, offer_id, pid, 1 AS impressions, 0 AS clicks
    FROM rejections
    WHERE ts >= $start AND ts < $end
    AND (len($offers) = 0 OR list_contains($offers, offer_id))
    AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
    UNION ALL
    SELECT reason, offer_id, pid, 0, 1
    FROM click_rejections
    WHERE ts >= $start AND ts < $end
    AND (len($offers) = 0 OR list_contains($offers, offer_id))
    AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
)
SELECT
    reason,
    sum(impressions + clicks)::BIGINT                                           AS rejections,
    sum(impressions)::BIGINT                                                    AS impressions,
    sum(clicks)::BIGINT                                                         AS clicks,
    round(100.0 * sum(impressions + clicks) / sum(sum(impressions + clicks)) OVER (), 1) AS share_pct,
    count(DISTINCT offer_id)::BIGINT                                            AS offers,
    count(DISTINCT pid)::BIGINT                                                 AS affiliates
FROM rejected
GROUP BY reason
