-- Template attempts remember what they were asked (a hash of the PDF address and instructions)
-- and whether they count toward the daily limit: the same request sent again within seconds of
-- a failure (the frontend re-sends a failed request once by itself) is a repeat of that attempt
-- and does not count a second time. Existing rows all counted.
ALTER TABLE template_attempts ADD COLUMN fingerprint bytea;
ALTER TABLE template_attempts ADD COLUMN counted boolean NOT NULL DEFAULT true;

-- The admin user list counts each user's failed items by index (the per-user count of all
-- items uses queue_items_user_created_idx): no pass over the whole queue table.
CREATE INDEX queue_items_user_failed_idx ON queue_items (user_id) WHERE status = 'failed';
