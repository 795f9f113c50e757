-- Conversions slice: the conversions created in the period, as they stand now.
SELECT
    conversion_id,
    strftime(timezone($tz, ts), '%Y-%m-%d %H:%M:%S') AS created,
    offer_id,
    pid,
    advertiser_id,
    attribution,
    aimp_id,
    clickid,
    imp_id,
    action_id,
    goal,
    CASE status WHEN 1 THEN 'approved' WHEN 2 THEN 'pending' WHEN 3 THEN 'declined'
        WHEN 5 THEN 'hold' END                         AS status,
    revenue::DECIMAL(18, 4)                            AS revenue,
    payout::DECIMAL(18, 4)                             AS payout,
    currency,
    revision
FROM conversions
WHERE ts >= $start AND ts < $end
  AND (len($offers) = 0 OR list_contains($offers, offer_id))
  AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
  AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
  AND (len($statuses) = 0 OR list_contains($statuses, status))
