-- Stored: a postback's outcome already stored (an outcome is published again when
-- its postback is read again after a crash; it is the same outcome).
SELECT postback_id FROM server_postbacks WHERE postback_id >= $min_id;

INSERT INTO server_postbacks BY NAME SELECT * FROM fresh_server_postbacks;
