-- The affiliate's imp_id on each conversion (issue 21): that of the impression a
-- view-through conversion followed, or of the click (its own, or its linked
-- impression's). The worker sends it from now on; older rows take it from the
-- impression or click they name, where the file has it.
ALTER TABLE conversions ADD COLUMN imp_id VARCHAR;
UPDATE conversions SET imp_id = clicks.imp_id
FROM clicks WHERE conversions.clickid = clicks.clickid;
UPDATE conversions SET imp_id = impressions.imp_id
FROM impressions
WHERE conversions.clickid IS NULL AND conversions.aimp_id = impressions.aimp_id;
