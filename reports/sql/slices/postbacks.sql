-- Server postbacks slice: every postback received in the period, newest first.
SELECT
    postback_id,
    strftime(timezone($tz, ts), '%Y-%m-%d %H:%M:%S') AS received,
    method,
    ip,
    CASE status WHEN 1 THEN 'accepted' ELSE 'refused' END AS status,
    outcome,
    coalesce(error, '')                                AS error,
    coalesce(conversion_id, '')                        AS conversion_id,
    params
FROM server_postbacks
WHERE ts >= $start AND ts < $end AND (NOT $errors_only OR status = 2)
  AND (len($offers) = 0 OR list_contains($offers, offer_id))
  AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
  AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
