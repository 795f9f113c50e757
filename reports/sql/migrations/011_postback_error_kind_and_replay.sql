-- Issue 24: each refusal's kind of error (app.attribution.params.RefusalKind), to
-- count refusals by, and for a postback sent again by `imptrack postbacks replay`
-- the one it sent again. Outcomes stored before have neither.
ALTER TABLE server_postbacks ADD COLUMN error_kind VARCHAR;
ALTER TABLE server_postbacks ADD COLUMN replay_of VARCHAR;
