-- The advertiser on rejected impressions and clicks and on server postbacks (issue
-- 21), so the Rejections and Server postbacks slices can be narrowed by advertiser
-- like the others. The worker and the edge send it from now on (NULL when the
-- offer is unknown, or a postback named nothing that was tracked). Older rows, and
-- the rejection rollups, learn it from any other event of the same offer.
ALTER TABLE rejections ADD COLUMN advertiser_id INTEGER;
ALTER TABLE click_rejections ADD COLUMN advertiser_id INTEGER;
ALTER TABLE server_postbacks ADD COLUMN advertiser_id INTEGER;
-- 0: not known (the rollups' dimensions are never NULL; the slices read it as none).
ALTER TABLE rejections_hourly ADD COLUMN advertiser_id INTEGER DEFAULT 0;
ALTER TABLE click_rejections_hourly ADD COLUMN advertiser_id INTEGER DEFAULT 0;

CREATE TEMP TABLE offer_advertisers AS
SELECT offer_id, max(advertiser_id) AS advertiser_id
FROM stats_hourly
WHERE advertiser_id <> 0
GROUP BY offer_id;

UPDATE rejections SET advertiser_id = known.advertiser_id
FROM offer_advertisers AS known WHERE rejections.offer_id = known.offer_id;
UPDATE click_rejections SET advertiser_id = known.advertiser_id
FROM offer_advertisers AS known WHERE click_rejections.offer_id = known.offer_id;
UPDATE server_postbacks SET advertiser_id = known.advertiser_id
FROM offer_advertisers AS known WHERE server_postbacks.offer_id = known.offer_id;
UPDATE rejections_hourly SET advertiser_id = known.advertiser_id
FROM offer_advertisers AS known WHERE rejections_hourly.offer_id = known.offer_id;
UPDATE click_rejections_hourly SET advertiser_id = known.advertiser_id
FROM offer_advertisers AS known WHERE click_rejections_hourly.offer_id = known.offer_id;

DROP TABLE offer_advertisers;
