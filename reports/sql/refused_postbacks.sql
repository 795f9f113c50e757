-- The refused postbacks `imptrack postbacks replay` sends again: refused in
-- [$from_ts, $to_ts), of the offer and the kind of error asked for (NULL: any), each
-- the latest decision about its original (a postback sent again names it in
-- replay_of), and none whose original was accepted since, first or when sent again.
SELECT
    refused.postback_id,
    refused.method,
    refused.params,
    refused.ip,
    coalesce(refused.replay_of, refused.postback_id) AS original,
    refused.error_kind,
    refused.offer_id
FROM server_postbacks AS refused
WHERE refused.status = 2
  AND refused.ts >= $from_ts AND refused.ts < $to_ts
  AND ($offer_id IS NULL OR refused.offer_id = $offer_id)
  AND ($error_kind IS NULL OR refused.error_kind = $error_kind)
  AND NOT EXISTS (
      SELECT 1 FROM server_postbacks AS later
      WHERE coalesce(later.replay_of, later.postback_id)
            = coalesce(refused.replay_of, refused.postback_id)
        AND (later.status = 1 OR later.postback_id > refused.postback_id)
  )
ORDER BY refused.postback_id;
