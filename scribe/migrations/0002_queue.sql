-- Queue engine: fairness index, change notifications for the SSE stream, operator views.

-- The fair claim counts each waiting user's running items; this keeps that count an index probe.
CREATE INDEX queue_items_processing_user_idx ON queue_items (user_id) WHERE status = 'processing';

-- Every change the frontend can see (status, step, result) is announced on `scribe_queue_items`
-- with the owner's id as payload, whoever made it (API, worker, reaper). Identical payloads in one
-- transaction are folded into one notification by PostgreSQL, so a 100-item batch sends one.
CREATE FUNCTION queue_items_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scribe_queue_items', NEW.user_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER queue_items_notify_insert
    AFTER INSERT ON queue_items
    FOR EACH ROW EXECUTE FUNCTION queue_items_notify_change();

CREATE TRIGGER queue_items_notify_update
    AFTER UPDATE ON queue_items
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.current_step IS DISTINCT FROM NEW.current_step
          OR OLD.error_message IS DISTINCT FROM NEW.error_message)
    EXECUTE FUNCTION queue_items_notify_change();

-- Operator views (`scribe queue` prints them; `psql` works too).
CREATE VIEW queue_overview AS
SELECT
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'pending' AND run_after <= now()) AS due,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    date_trunc('second', now() - min(created_at) FILTER (WHERE status = 'pending'))
        AS oldest_pending_age,
    count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '1 hour')
        AS completed_last_hour,
    count(*) FILTER (WHERE status = 'failed' AND completed_at > now() - interval '1 hour')
        AS failed_last_hour
FROM queue_items;

CREATE VIEW queue_active AS
SELECT id, user_id, recipient_name, current_step, locked_by AS owner, attempts, max_attempts,
       started_at,
       date_trunc('second', lease_expires_at - now()) AS lease_left,
       cancel_requested_at IS NOT NULL AS cancel_requested
FROM queue_items
WHERE status = 'processing'
ORDER BY started_at;

CREATE VIEW queue_failures AS
SELECT id, user_id, recipient_name, status, failed_step, attempts, error_message,
       coalesce(completed_at, updated_at) AS at
FROM queue_items
WHERE error_message IS NOT NULL
  AND status IN ('failed', 'pending')
  AND updated_at > now() - interval '7 days'
ORDER BY coalesce(completed_at, updated_at) DESC;
