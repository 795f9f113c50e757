-- Postback errors slice: the server postbacks refused in the period, per kind of
-- error (app.attribution.params.RefusalKind; outcomes stored before migration 011
-- have none and count as 'unknown'), with the newest refusal's own words, for the
-- advertiser's engineer to read first.
SELECT
    coalesce(error_kind, 'unknown')                                       AS error_kind,
    count(*)::BIGINT                                                      AS refusals,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1)                    AS share_pct,
    count(DISTINCT offer_id)::BIGINT                                      AS offers,
    strftime(timezone($tz, max(ts)), '%Y-%m-%d %H:%M:%S')                 AS last_received,
    coalesce(arg_max(error, ts), '')                                      AS last_error
FROM server_postbacks
WHERE ts >= $start AND ts < $end AND status = 2
  AND (len($offers) = 0 OR list_contains($offers, offer_id))
  AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
  AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
GROUP BY ALL
