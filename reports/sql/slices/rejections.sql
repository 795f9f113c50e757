-- Rejections slice: why impressions and clicks were not tracked, per reason code.
-- `rejected` is put in front by reports/slices.py: the UTC hourly rollups, or the
-- rows for timezones whose offset is not a whole number of hours.
SELECT
    reason,
    sum(impressions + clicks)::BIGINT                                           AS rejections,
    sum(impressions)::BIGINT                                                    AS impressions,
    sum(clicks)::BIGINT                                                         AS clicks,
    round(100.0 * sum(impressions + clicks) / sum(sum(impressions + clicks)) OVER (), 1) AS share_pct,
    count(DISTINCT offer_id)::BIGINT                                            AS offers,
    count(DISTINCT pid)::BIGINT                                                 AS affiliates
FROM rejected
WHERE hour >= $start AND hour < $end
    AND (len($offers) = 0 OR list_contains($offers, offer_id))
    AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
    AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
GROUP BY reason
