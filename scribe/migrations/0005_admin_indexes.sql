-- Indexes for the admin API (GET /api/admin/*), so each route stays an index read over a large
-- history. The per-user reads (emails, templates, queue) use the (user_id, created_at) indexes
-- of 0001.

-- Weekly figures and the 12-week activity chart read a recent range of emails; user_id is
-- included so the distinct-user counts never visit the table.
CREATE INDEX emails_created_idx ON emails (created_at) INCLUDE (user_id);

-- The error log: failed items newest first (a small fraction of a large table).
CREATE INDEX queue_items_failed_created_idx ON queue_items (created_at DESC, seq DESC)
    WHERE status = 'failed';

