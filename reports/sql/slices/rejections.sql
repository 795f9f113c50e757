-- Rejections slice: why impressions and clicks were not tracked, per reason code,
-- from the UTC hourly rollups (exact for timezones with whole-hour offsets).
WITH rejected AS (
    SELECT reason, offer_id, pid, rejections AS impressions, 0::BIGINT AS clicks
    FROM rejections_hourly
    WHERE hour >= $start AND hour < $end
    AND (len($offers) = 0 OR list_contains($offers, offer_id))
    AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
    UNION ALL
    SELECT reason, offer_id, pid, 0::BIGINT, rejections
    FROM click_rejections_hourly
    WHERE hour >= $start AND hour < $end
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
