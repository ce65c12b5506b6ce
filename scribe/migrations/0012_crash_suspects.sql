-- A lost worker is blamed on an item only when the item is the likely cause.
--
-- A process that dies takes every item it was running with it; `crashes` counts those losses
-- for each of them, and used to be the poison bound, so healthy items running beside a poison
-- one reached it too. Now an item whose worker was lost while it ran beside others becomes a
-- `suspect`: it is claimed again only alone (an owner with no other job takes it and nothing
-- else; busy owners drain for it once it waited a lease, see claim_queue_items), and only a loss during such a run counts in `blamed_crashes`,
-- the bound SCRIBE_MAX_CRASHES applies to. A healthy item never fails for another's crash.
ALTER TABLE queue_items
    ADD COLUMN suspect        boolean NOT NULL DEFAULT false,
    ADD COLUMN blamed_crashes integer NOT NULL DEFAULT 0 CHECK (blamed_crashes >= 0);

-- Due suspects, longest due first: probed by every claim, so kept to the few pending suspects.
CREATE INDEX queue_items_suspect_idx ON queue_items (run_after)
    WHERE status = 'pending' AND suspect;

-- Operators see which running items are suspects (appended columns keep the view's others).
CREATE OR REPLACE VIEW queue_active AS
SELECT id, user_id, recipient_name, current_step, locked_by AS owner, attempts, max_attempts,
       attempt_started_at AS started_at,
       date_trunc('second', lease_expires_at - now()) AS lease_left,
       cancel_requested_at IS NOT NULL AS cancel_requested,
       round(extract(epoch FROM lease_expires_at - now())::numeric, 1) AS lease_left_seconds,
       round(extract(epoch FROM now() - step_started_at)::numeric, 1) AS step_seconds,
       claims, crashes,
       started_at AS first_started_at,
       -- The heartbeat renews every TTL/4; two missed beats mean the owner stalled or died.
       now() - heartbeat_at > (lease_expires_at - heartbeat_at) / 2 AS heartbeat_stopped,
       suspect, blamed_crashes
FROM queue_items
WHERE status = 'processing'
ORDER BY attempt_started_at;
