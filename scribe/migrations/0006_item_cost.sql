-- Cost per queue item: fewer bytes written and fewer statements per item.
-- The template is stored once per batch; the fair order is decided at enqueue (a claim is one
-- index read, however long the backlog); the happy path writes no event rows (the item row
-- records its last claim's steps); change notifications fire only where someone can use them.

-- The template is the same for every item of a request: one row per request instead of a copy
-- in every item (and in every row version a checkpoint or a claim writes). No foreign key from
-- queue_items: it would need an index on batch_id that every insert and claim would pay for;
-- the items of a batch share its user_id and created_at (one transaction), which is how
-- retention finds batches left without items (queue_items_user_created_idx).
CREATE TABLE queue_batches (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email_template text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_batches_created_idx ON queue_batches (created_at);

UPDATE queue_items SET batch_id = id WHERE batch_id IS NULL;
INSERT INTO queue_batches (id, user_id, email_template, created_at)
SELECT DISTINCT ON (batch_id) batch_id, user_id, email_template, created_at
FROM queue_items
ORDER BY batch_id, seq;
ALTER TABLE queue_items ALTER COLUMN batch_id SET NOT NULL;
ALTER TABLE queue_items DROP COLUMN email_template;

-- Fair order as a number given at enqueue (start-time fair queueing): a user's n-th waiting
-- item gets round (the lowest waiting round - 1) + n, or continues after their own last waiting
-- item. Items of different users interleave, each user's stay FIFO, and the claim reads the
-- (fair_round, seq) index from its head: no walk over every waiting user per claim (that walk
-- grew with the users waiting and with the dead index entries a draining backlog leaves).
ALTER TABLE queue_items ADD COLUMN fair_round bigint NOT NULL DEFAULT 0;
UPDATE queue_items q SET fair_round = ranked.n
FROM (SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY seq) AS n
      FROM queue_items WHERE status = 'pending') AS ranked
WHERE q.id = ranked.id;
CREATE INDEX queue_items_fair_idx ON queue_items (fair_round, seq) WHERE status = 'pending';
-- Only the old fair claim counted running items per user; every claim paid for this index.
DROP INDEX queue_items_processing_user_idx;

-- The steps the current claim finished (after completion: the last claim's), each
-- [step, seconds, wait_seconds, at (epoch seconds)]: arrays, not objects, as the row version
-- each checkpoint writes carries them. A claim that ends otherwise (retry, release, reap, cancel,
-- failure) copies them into its event row with the claim's start; a completed item keeps them
-- in its row. So the happy path writes no queue_item_events rows at all.
ALTER TABLE queue_items ADD COLUMN step_log jsonb;
ALTER TABLE queue_item_events
    ADD COLUMN claimed_at timestamptz,  -- when the claim this event ended began
    ADD COLUMN steps      jsonb;        -- the steps that claim finished (as step_log)

-- One element of a step log as a row.
CREATE FUNCTION queue_step_entry(entry jsonb, OUT step text, OUT seconds float8,
                                 OUT wait_seconds float8, OUT at timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT entry ->> 0, (entry ->> 1)::float8, (entry ->> 2)::float8,
           to_timestamp((entry ->> 3)::float8)
$$;

-- Room on each page for the row versions of the checkpoints, so they stay on the page and are
-- HOT updates (no index entries): no column they change is indexed.
-- Vacuum and analyze sooner than the defaults (20 % / 10 % of the table): a queue table
-- churns, and a fresh backlog without statistics makes the claim sort every due row.
ALTER TABLE queue_items SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05,
                             autovacuum_analyze_scale_factor = 0.02);

-- The whole history of an item, oldest first: the stored events, the claims and steps they
-- carry, and a completed item's last claim from its row (the happy path stores no events; items
-- completed before this migration have no step log, and their events are all stored).
CREATE VIEW queue_item_history AS
SELECT e.item_id, e.at, e.kind, e.claim, e.step, e.seconds, e.wait_seconds, e.reason, e.error,
       e.owner
FROM queue_item_events e
UNION ALL
SELECT e.item_id, e.claimed_at, 'claim', e.claim, coalesce(e.steps -> 0 ->> 0, e.step), NULL,
       NULL, NULL, NULL, e.owner
FROM queue_item_events e
WHERE e.claimed_at IS NOT NULL
UNION ALL
SELECT e.item_id, s.at, 'step', e.claim, s.step, s.seconds, s.wait_seconds, NULL, NULL, e.owner
FROM queue_item_events e, jsonb_array_elements(e.steps) AS entry, queue_step_entry(entry) AS s
WHERE e.steps IS NOT NULL
UNION ALL
SELECT q.id, q.attempt_started_at, 'claim', q.claims, coalesce(q.step_log -> 0 ->> 0,
       q.current_step), NULL, NULL, NULL, NULL, q.locked_by
FROM queue_items q
WHERE q.status = 'completed' AND q.step_log IS NOT NULL
UNION ALL
SELECT q.id, s.at, 'step', q.claims, s.step, s.seconds, s.wait_seconds, NULL, NULL, q.locked_by
FROM queue_items q, jsonb_array_elements(q.step_log) AS entry, queue_step_entry(entry) AS s
WHERE q.status = 'completed' AND q.step_log IS NOT NULL
UNION ALL
SELECT q.id, q.completed_at, 'complete', q.claims, NULL, NULL, NULL, NULL, NULL, q.locked_by
FROM queue_items q
WHERE q.status = 'completed' AND q.step_log IS NOT NULL;

-- Step durations over the last hour and day, as before, from the steps in the events and in
-- the items completed in that window (their steps are no longer separate event rows).
DROP VIEW queue_step_durations;
CREATE VIEW queue_step_durations AS
WITH steps AS (
    SELECT e.step, e.at, e.seconds, e.wait_seconds
    FROM queue_item_events e
    WHERE e.kind = 'step' AND e.at > now() - interval '1 day'
    UNION ALL
    SELECT s.step, s.at, s.seconds, s.wait_seconds
    FROM queue_item_events e, jsonb_array_elements(e.steps) AS entry, queue_step_entry(entry) AS s
    WHERE e.steps IS NOT NULL AND e.at > now() - interval '1 day'
    UNION ALL
    SELECT s.step, s.at, s.seconds, s.wait_seconds
    FROM queue_items q, jsonb_array_elements(q.step_log) AS entry, queue_step_entry(entry) AS s
    WHERE q.status = 'completed' AND q.completed_at > now() - interval '1 day'
)
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
JOIN steps e ON e.at > now() - w.span
GROUP BY w.label, w.span, e.step
ORDER BY w.span, e.step;

-- Change notifications (the SSE stream re-reads the user's items on one) only where someone can
-- use them: for users with an open stream. Each NOTIFY serialises commits (PostgreSQL takes one
-- global lock to queue notifications) and wakes every listening process, and a worker's item
-- went through five of them (claim, three steps, completion) with nobody watching.
-- A stream registers its user here and refreshes the row while open (it expires when its
-- process dies); UNLOGGED: it is rebuilt by the streams after a crash, and writes no WAL.
CREATE UNLOGGED TABLE queue_watchers (
    user_id    uuid NOT NULL,
    watcher    uuid NOT NULL,  -- one open stream
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, watcher)
);

CREATE OR REPLACE FUNCTION queue_items_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM queue_watchers
               WHERE user_id = NEW.user_id AND expires_at > now()) THEN
        PERFORM pg_notify('scribe_queue_items', NEW.user_id::text);
    END IF;
    RETURN NULL;
END
$$;

-- An insert announces its batch once per statement (it used to run the trigger for every row).
DROP TRIGGER queue_items_notify_insert ON queue_items;
CREATE FUNCTION queue_items_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scribe_queue_items', watched.user_id::text)
    FROM (SELECT DISTINCT i.user_id FROM inserted i
          WHERE EXISTS (SELECT 1 FROM queue_watchers w
                        WHERE w.user_id = i.user_id AND w.expires_at > now())) AS watched;
    RETURN NULL;
END
$$;
CREATE TRIGGER queue_items_notify_insert
    AFTER INSERT ON queue_items
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION queue_items_notify_inserted();
