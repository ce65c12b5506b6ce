-- Whose fault: attempts count only what the item caused; claims fence the writes; crashes and
-- age bound what happened to it. An events table keeps every attempt's history; provider
-- circuit-breaker state is shared through a small table; operator views tell the truth.

-- `attempts` used to be bumped by every claim, so every kill, stall or outage charged the item.
-- Now `claims` (bumped by each claim) is the fence, `attempts` the item's own failures, and
-- `crashes` the times its worker was lost holding it (a poison item ends failed on that count).
ALTER TABLE queue_items
    ADD COLUMN claims             integer NOT NULL DEFAULT 0 CHECK (claims >= 0),
    ADD COLUMN crashes            integer NOT NULL DEFAULT 0 CHECK (crashes >= 0),
    ADD COLUMN attempt_started_at timestamptz,  -- when the current claim began
    ADD COLUMN step_started_at    timestamptz,  -- when the current step began
    ADD COLUMN heartbeat_at       timestamptz,  -- the owner's last lease renewal
    ADD COLUMN requeued_at        timestamptz,  -- an operator re-queued it (the age bound restarts)
    ADD COLUMN waiting_for        text;  -- the provider a pending item waits for (woken when back)

-- Claims so far were counted in `attempts`: carry them over so running fences stay valid.
UPDATE queue_items SET claims = attempts;

-- One narrow row per thing that happened to an item, written by the statement that changed it.
-- kind: claim | step (a finished step: seconds, of which wait_seconds was pacing) | retry (a
-- failure, charged or not: reason says why) | release | reap | cancel | complete | fail | requeue.
CREATE TABLE queue_item_events (
    item_id      uuid NOT NULL REFERENCES queue_items (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('claim', 'step', 'retry', 'release', 'reap',
                                                'cancel', 'complete', 'fail', 'requeue')),
    claim        integer,
    step         text,
    seconds      double precision,
    wait_seconds double precision,
    reason       text,
    error        text CHECK (char_length(error) <= 1000),
    owner        text
);
-- By item (history, and the cascade when retention prunes the item) and by kind and time (views).
CREATE INDEX queue_item_events_item_idx ON queue_item_events (item_id, at);
CREATE INDEX queue_item_events_kind_at_idx ON queue_item_events (kind, at);

-- Circuit-breaker state per provider, written on transitions only (scribe/clients/providers.py).
CREATE TABLE provider_states (
    provider      text PRIMARY KEY,
    state         text NOT NULL CHECK (state IN ('up', 'down')),
    reason        text,
    since         timestamptz NOT NULL DEFAULT now(),
    next_probe_at timestamptz,
    failures      integer NOT NULL DEFAULT 0,
    reported_by   text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Operator views. The three old names keep their columns (new ones appended) except where the
-- old value misled: oldest_pending_age counts due items only, started_at is the current claim's.
DROP VIEW queue_overview;
CREATE VIEW queue_overview AS
SELECT
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'pending' AND run_after <= now()) AS due,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    date_trunc('second', now() - min(created_at)
        FILTER (WHERE status = 'pending' AND run_after <= now())) AS oldest_pending_age,
    count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '1 hour')
        AS completed_last_hour,
    count(*) FILTER (WHERE status = 'failed' AND completed_at > now() - interval '1 hour')
        AS failed_last_hour,
    round(extract(epoch FROM now() - min(run_after)
        FILTER (WHERE status = 'pending' AND run_after <= now()))::numeric, 1)
        AS oldest_due_wait_seconds,
    count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS waiting_backoff,
    (SELECT count(*) FROM provider_states WHERE state = 'down') AS providers_down
FROM queue_items;

DROP VIEW queue_active;
CREATE VIEW queue_active AS
SELECT id, user_id, recipient_name, current_step, locked_by AS owner, attempts, max_attempts,
       attempt_started_at AS started_at,
       date_trunc('second', lease_expires_at - now()) AS lease_left,
       cancel_requested_at IS NOT NULL AS cancel_requested,
       round(extract(epoch FROM lease_expires_at - now())::numeric, 1) AS lease_left_seconds,
       round(extract(epoch FROM now() - step_started_at)::numeric, 1) AS step_seconds,
       claims, crashes,
       started_at AS first_started_at,
       -- The heartbeat renews every TTL/4; two missed beats mean the owner stalled or died.
       now() - heartbeat_at > (lease_expires_at - heartbeat_at) / 2 AS heartbeat_stopped
FROM queue_items
WHERE status = 'processing'
ORDER BY attempt_started_at;

-- Owners (processes) holding items, and whether their heartbeat stopped.
CREATE VIEW queue_workers AS
SELECT locked_by AS owner, count(*) AS items,
       round(extract(epoch FROM now() - max(heartbeat_at))::numeric, 1)
           AS seconds_since_heartbeat,
       round(extract(epoch FROM min(lease_expires_at) - now())::numeric, 1)
           AS min_lease_left_seconds,
       bool_and(now() - heartbeat_at > (lease_expires_at - heartbeat_at) / 2)
           AS heartbeat_stopped
FROM queue_items
WHERE status = 'processing'
GROUP BY locked_by
ORDER BY locked_by;

-- Step durations over the last hour and day: pacing wait (arXiv's one request per 3 s) apart
-- from the time spent in the step itself.
CREATE VIEW queue_step_durations AS
SELECT w.label AS time_window, e.step, count(*) AS runs,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY e.seconds)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY e.seconds)::numeric, 3) AS p95_seconds,
       round(percentile_cont(0.5) WITHIN GROUP (
           ORDER BY e.seconds - coalesce(e.wait_seconds, 0))::numeric, 3) AS p50_work_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (
           ORDER BY e.seconds - coalesce(e.wait_seconds, 0))::numeric, 3) AS p95_work_seconds,
       round(percentile_cont(0.5) WITHIN GROUP (
           ORDER BY coalesce(e.wait_seconds, 0))::numeric, 3) AS p50_pacing_wait_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (
           ORDER BY coalesce(e.wait_seconds, 0))::numeric, 3) AS p95_pacing_wait_seconds
FROM (VALUES ('1 hour', interval '1 hour'), ('1 day', interval '1 day')) AS w(label, span)
JOIN queue_item_events e ON e.kind = 'step' AND e.at > now() - w.span
GROUP BY w.label, w.span, e.step
ORDER BY w.span, e.step;

-- Failures that did not end the item (provider overloads, lost workers, timeouts), last 24 h:
-- completion no longer erases them.
CREATE VIEW queue_transient_errors AS
SELECT e.at, e.item_id, e.kind, e.reason, e.step, e.claim, e.error, e.owner
FROM queue_item_events e
WHERE e.kind IN ('retry', 'release', 'reap') AND e.at > now() - interval '24 hours'
  AND (e.error IS NOT NULL OR e.reason IS DISTINCT FROM 'shutdown')
ORDER BY e.at DESC;

-- Provider circuit breakers as last reported by any process.
CREATE VIEW queue_providers AS
SELECT provider, state, reason, since,
       round(extract(epoch FROM now() - since)::numeric, 0) AS seconds_in_state,
       round(extract(epoch FROM next_probe_at - now())::numeric, 1) AS next_probe_in_seconds,
       failures, reported_by, updated_at
FROM provider_states
ORDER BY provider;
