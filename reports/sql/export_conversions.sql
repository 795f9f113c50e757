-- Conversions of one batch, each as of its highest revision in the batch, where
-- that is newer than the stored row: a replay of an older revision (or of the same
-- one) changes nothing, a status update replaces the row.
CREATE OR REPLACE TEMP TABLE fresh_conversions AS
SELECT b.*
FROM (
    SELECT * FROM batch_conversions
    QUALIFY row_number() OVER (PARTITION BY conversion_id ORDER BY revision DESC) = 1
) AS b
LEFT JOIN conversions AS stored ON stored.conversion_id = b.conversion_id
WHERE stored.conversion_id IS NULL OR stored.revision < b.revision;

INSERT OR REPLACE INTO conversions BY NAME SELECT * FROM fresh_conversions;
