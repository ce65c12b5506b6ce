-- The job kind of a queue item: which handler the queue engine runs it with (scribe/queue/handler.py).
-- Every existing item, and every item enqueued without one, is an email job. Adding a column with
-- a constant default rewrites no rows.
ALTER TABLE queue_items ADD COLUMN kind text NOT NULL DEFAULT 'email';
