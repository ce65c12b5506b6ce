-- Named queries: `-- name --`, a one-line `-- description`, then the statement ($1…$n).
-- Loaded once by scribe/db/queries.py. Never format values into SQL.

-- database_exists --
-- Whether a database of this name exists on the server.
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)

-- create_schema_migrations --
-- The migration ledger (created under the migration lock).
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- lock_migrations --
-- Serialise migrators across processes until the end of the transaction.
SELECT pg_advisory_xact_lock(7263918401)

-- list_schema_migrations --
-- Every applied migration with its checksum.
SELECT version, checksum FROM schema_migrations

-- get_schema_migration --
-- Checksum of one applied migration (NULL if not applied).
SELECT checksum FROM schema_migrations WHERE version = $1

-- insert_schema_migration --
-- Record a migration as applied.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)

-- get_user --
-- One user profile by id.
SELECT id, email, display_name, generation_count, template_count, onboarded, email_template,
       created_at
FROM users WHERE id = $1

-- insert_user --
-- Create a profile unless this id exists; returns nothing when it already did.
INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING
RETURNING id, email, display_name, generation_count, template_count, onboarded, email_template,
          created_at

-- set_user_onboarded --
-- Mark a user onboarded.
UPDATE users SET onboarded = true, updated_at = now() WHERE id = $1
RETURNING id, email, display_name, generation_count, template_count, onboarded, email_template,
          created_at

-- set_user_template --
-- Store the user's default email template.
UPDATE users SET email_template = $2, updated_at = now() WHERE id = $1
RETURNING id, email, display_name, generation_count, template_count, onboarded, email_template,
          created_at

-- queue_counts --
-- Live queue counts for /health (partial indexes keep this cheap).
SELECT
    (SELECT count(*) FROM queue_items WHERE status = 'pending') AS pending,
    (SELECT count(*) FROM queue_items WHERE status = 'processing') AS processing

-- list_emails --
-- A user's emails, newest first; $2 = include hidden (displayed = false) ones.
SELECT id, user_id, recipient_name, recipient_interest, email_message, template_type, metadata,
       is_confident, displayed, created_at
FROM emails
WHERE user_id = $1 AND (displayed OR $2)
ORDER BY created_at DESC, id DESC
LIMIT $3 OFFSET $4

-- list_emails_after --
-- The next page of list_emails: the rows after the one with created_at $3 and id $4 in its
-- order (keyset: the index emails_user_created_idx reads exactly these, however deep the page).
SELECT id, user_id, recipient_name, recipient_interest, email_message, template_type, metadata,
       is_confident, displayed, created_at
FROM emails
WHERE user_id = $1 AND (displayed OR $2) AND (created_at, id) < ($3, $4)
ORDER BY created_at DESC, id DESC
LIMIT $5

-- get_email --
-- One email of a user.
SELECT id, user_id, recipient_name, recipient_interest, email_message, template_type, metadata,
       is_confident, displayed, created_at
FROM emails WHERE id = $1 AND user_id = $2

-- set_email_displayed --
-- Show or hide one email of a user.
UPDATE emails SET displayed = $3 WHERE id = $1 AND user_id = $2
RETURNING id, user_id, recipient_name, recipient_interest, email_message, template_type,
          metadata, is_confident, displayed, created_at

-- list_templates --
-- A user's generated templates, newest first.
SELECT id, user_id, pdf_url, template_text, user_instructions, created_at
FROM templates WHERE user_id = $1
ORDER BY created_at DESC, id DESC

-- get_template --
-- One generated template of a user.
SELECT id, user_id, pdf_url, template_text, user_instructions, created_at
FROM templates WHERE id = $1 AND user_id = $2

-- ===== foundation =====

-- insert_template --
-- Store one generated template.
INSERT INTO templates (id, user_id, pdf_url, template_text, user_instructions)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, user_id, pdf_url, template_text, user_instructions, created_at

-- ===== template analyses =====
-- A template's analysis (type, placeholders), keyed by a hash of what it depends on
-- (scribe/migrations/0009_template_analyses.sql).

-- get_template_analysis --
-- The stored analysis of key $1, if any.
SELECT analysis FROM template_analyses WHERE key = $1

-- save_template_analysis --
-- Store the analysis $2 of key $1; two processes that analysed the same template at once store
-- the same answer, so the second write changes nothing that matters.
INSERT INTO template_analyses (key, analysis) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET analysis = excluded.analysis

-- prune_template_analyses --
-- Delete up to $2 analyses stored more than $1 seconds ago.
WITH doomed AS MATERIALIZED (
    SELECT key FROM template_analyses
    WHERE created_at < now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM template_analyses a USING doomed WHERE a.key = doomed.key

-- ===== queue =====
-- Every worker write is fenced on ($1 id, $2 owner, $3 claim): it touches 0 rows once the
-- lease was lost (reaped, cancelled, taken by another process), and the worker then stops.
-- `claims` counts claims (the fence); `attempts` only the item's own failures (DESIGN §4).
-- The happy path (claim, steps, completion) writes no queue_item_events row: the row keeps the
-- claim's steps in `step_log`. Every other end of a claim (retry, release, reap, cancel, failure)
-- appends one event row in the same statement, carrying the claim's start and steps.

-- lock_idempotency_key --
-- Serialise concurrent submissions of one (user, Idempotency-Key) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || ':' || $2, 7263918402))

-- find_idempotent_batch --
-- Ids of the items an earlier request with this Idempotency-Key created, in submission order.
SELECT id FROM queue_items WHERE user_id = $1 AND idempotency_key = $2 ORDER BY seq

-- insert_queue_items --
-- Enqueue items of job kind $9 in submission order ($4 names and $5 interests are parallel to
-- $3 ids), their template once in batch $2, and wake the consumers (delivered at commit).
WITH batch AS (
    INSERT INTO queue_batches (id, user_id, email_template) VALUES ($2, $1, $6)
),
-- Fair order (DESIGN §4): the user's items continue after their own last waiting item, or start
-- level with the lowest waiting round, so they interleave with everyone else's from now on.
start AS (
    SELECT coalesce(
        (SELECT max(fair_round) FROM queue_items WHERE user_id = $1 AND status = 'pending'),
        (SELECT fair_round - 1 FROM queue_items WHERE status = 'pending'
         ORDER BY fair_round, seq LIMIT 1),
        0) AS round
),
inserted AS (
    INSERT INTO queue_items (id, user_id, batch_id, recipient_name, recipient_interest,
                             max_attempts, idempotency_key, fair_round, kind)
    SELECT item.id, $1, $2, item.recipient_name, item.recipient_interest, $7, $8,
           start.round + item.position, $9
    FROM unnest($3::uuid[], $4::text[], $5::text[]) WITH ORDINALITY
         AS item(id, recipient_name, recipient_interest, position), start
    ORDER BY item.position
)
SELECT pg_notify('scribe_queue', '')

-- notify_queue --
-- Wake every LISTENing consumer (delivered at commit, so never before the rows are visible).
SELECT pg_notify('scribe_queue', '')

-- list_recent_queue_items --
-- A user's items of the last 24 h, oldest first, at most $2 of them: the live ones (pending or
-- processing) first, then the newest finished ones. Position counts all their pending items
-- (1-based), so it stays right when the list is cut.
WITH pending AS (
    SELECT id, row_number() OVER (ORDER BY seq) AS position
    FROM queue_items
    WHERE user_id = $1 AND status = 'pending' AND created_at > now() - interval '24 hours'
), recent AS (
    SELECT id, recipient_name, status, email_id, error_message, current_step, created_at, seq
    FROM queue_items
    WHERE user_id = $1 AND created_at > now() - interval '24 hours' AND status <> 'cancelled'
    ORDER BY status IN ('pending', 'processing') DESC, seq DESC
    LIMIT $2
)
SELECT r.id, r.recipient_name, r.status, r.email_id, r.error_message, r.current_step,
       r.created_at, p.position
FROM recent r LEFT JOIN pending p ON p.id = r.id
ORDER BY r.created_at, r.seq

-- get_queue_item --
-- One item of a user (the /api/email/status view).
SELECT id, status, current_step, step_timings, email_id, error_message
FROM queue_items WHERE id = $1 AND user_id = $2

-- cancel_queue_item --
-- Cancel a user's item: pending ones at once, processing ones by request (the owner stops).
UPDATE queue_items
SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
    completed_at = CASE WHEN status = 'pending' THEN now() ELSE completed_at END,
    cancel_requested_at = coalesce(cancel_requested_at, now()),
    updated_at = now()
WHERE id = $1 AND user_id = $2 AND status IN ('pending', 'processing')
RETURNING status

-- watch_queue_items --
-- Register (or refresh) stream $2 of user $1 for $3 seconds: changes to the user's items are
-- announced on `scribe_queue_items` while a stream is registered. Expired registrations (their
-- process died) are dropped on the way.
WITH expired AS (
    DELETE FROM queue_watchers WHERE expires_at < now()
)
INSERT INTO queue_watchers (user_id, watcher, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (user_id, watcher) DO UPDATE SET expires_at = excluded.expires_at

-- unwatch_queue_items --
-- A stream closed: its registration goes.
DELETE FROM queue_watchers WHERE user_id = $1 AND watcher = $2

-- notify_cancel --
-- Tell the owning consumer at once that a processing item was cancelled.
SELECT pg_notify('scribe_cancel', $1::text)

-- claim_queue_items --
-- Claim up to $2 due items for owner $1 in fair order ($3 = lease seconds; $4 = {job kind: its
-- first unit's name}; $5 = how many jobs the owner runs now). The order was fixed at enqueue
-- (`fair_round`: users interleave, each user FIFO), so this reads the head of one partial index,
-- whatever the backlog. A suspect (its worker was lost while it ran beside others, migration
-- 0012) runs only alone: an owner running nothing claims it (the longest due first) and nothing
-- else. A busy owner leaves it to an idle one (a restarted process, a quieter peer) for one
-- lease; past that it claims nothing until its jobs drain and it can take the suspect itself.
WITH
-- Lock, skipping rows another consumer holds. MATERIALIZED so the LIMITs and the locks are
-- evaluated exactly once and the UPDATE below touches exactly the rows locked here.
suspect AS MATERIALIZED (
    SELECT id, batch_id, run_after
    FROM queue_items
    WHERE status = 'pending' AND suspect AND run_after <= now()
    ORDER BY run_after
    LIMIT 1
    FOR UPDATE SKIP LOCKED
),
healthy AS MATERIALIZED (
    SELECT id, batch_id
    FROM queue_items
    WHERE status = 'pending' AND run_after <= now() AND NOT suspect
      AND NOT EXISTS (SELECT 1 FROM suspect
                      WHERE $5::int = 0 OR run_after <= now() - make_interval(secs => $3))
    ORDER BY fair_round, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
claimed AS MATERIALIZED (
    SELECT id, batch_id FROM suspect WHERE $5::int = 0
    UNION ALL
    SELECT id, batch_id FROM healthy
),
-- The previous attempt's error is not this attempt's: cleared, kept in the events.
taken AS (
    UPDATE queue_items q
    SET status = 'processing',
        locked_by = $1,
        lease_expires_at = now() + make_interval(secs => $3),
        claims = q.claims + 1,
        started_at = coalesce(q.started_at, now()),
        attempt_started_at = now(),
        step_started_at = now(),
        heartbeat_at = now(),
        error_message = NULL,
        step_log = NULL,
        current_step = coalesce(q.current_step, $4::jsonb ->> q.kind),
        updated_at = now()
    FROM claimed JOIN queue_batches b ON b.id = claimed.batch_id
    WHERE q.id = claimed.id
    RETURNING q.id, q.kind, q.user_id, q.recipient_name, q.recipient_interest, b.email_template,
              q.claims, q.attempts, q.max_attempts, q.checkpoint,
              q.cancel_requested_at IS NOT NULL AS cancel_requested, q.suspect, q.fair_round, q.seq
)
-- Started in fair order.
SELECT id, kind, user_id, recipient_name, recipient_interest, email_template, claims, attempts,
       max_attempts, checkpoint, cancel_requested, suspect
FROM taken ORDER BY fair_round, seq

-- renew_leases --
-- One heartbeat for all of an owner's items ($2 ids, $3 claims); returns those still owned
-- (with their claim) and their cancel requests.
UPDATE queue_items q
SET lease_expires_at = now() + make_interval(secs => $4), heartbeat_at = now()
FROM unnest($2::uuid[], $3::int[]) AS mine(id, claims)
WHERE q.id = mine.id AND q.status = 'processing' AND q.locked_by = $1
  AND q.claims = mine.claims
RETURNING q.id, q.claims, q.cancel_requested_at IS NOT NULL AS cancel_requested

-- save_checkpoint --
-- Store the data after a completed step ($4 checkpoint, $5 timings, $6 next step), fenced, and
-- add the steps finished since the last write ($7, step log entries) to the claim's step log.
-- Committed asynchronously (no fsync wait): a checkpoint lost in a server crash only means a step
-- runs again (the item itself is never lost or duplicated: claims and completion are durable),
-- while flushing 3 of every 4 commits per item would dominate throughput and SD wear.
UPDATE queue_items
SET checkpoint = $4, step_timings = $5, current_step = $6, step_started_at = now(),
    step_log = coalesce(step_log, '[]'::jsonb) || $7::jsonb,
    waiting_for = NULL,  -- a step got done: whatever the item waited for is over
    updated_at = now()
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
RETURNING cancel_requested_at IS NOT NULL AS cancel_requested

-- complete_queue_item --
-- Fenced completion unless cancelled ($4 step timings), the steps finished since the last write
-- ($5, step log entries) added to the step log. The row keeps its owner (`locked_by`; no lease) and step log:
-- they are the completed claim's history. The job's result (the email) is written by its handler
-- in the same transaction, after this returns the item.
WITH done AS (
    UPDATE queue_items
    SET status = 'completed', lease_expires_at = NULL,
        step_timings = $4, error_message = NULL, failed_step = NULL, completed_at = now(),
        -- Never NULL once completed here: the history view reads the claim from it.
        step_log = coalesce(step_log, '[]'::jsonb) || $5::jsonb,
        checkpoint = NULL,  -- a completed item is never resumed: its result holds what it made
        updated_at = now()
    WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
      AND cancel_requested_at IS NULL
    RETURNING id
)
SELECT id FROM done

-- retry_queue_item --
-- Back to pending after a transient error, due in $4 seconds ($5 error, $6 step), fenced; $7 = 1
-- charges an attempt (the item's own failure), 0 does not (a provider outage, a wait): then the
-- item fails instead once older than $9 seconds (counted from its last re-queue). $8 = reason,
-- $10 = event kind ('retry' or 'release'), $11 = the provider it waits for (NULL: none).
-- Returns the new status, or 'still waiting' when the item goes back to the same uncharged wait
-- it was in (the same account, at the same step): that is not recorded again.
WITH before AS (
    -- The wait the item was in when claimed (waiting_for outlives the claim until a step is done).
    SELECT waiting_for, failed_step FROM queue_items WHERE id = $1
),
moved AS (
    UPDATE queue_items
    SET status = CASE WHEN $7 = 0 AND coalesce(requeued_at, created_at)
                               < now() - make_interval(secs => $9::float8)
                      THEN 'failed' ELSE 'pending' END,
        completed_at = CASE WHEN $7 = 0 AND coalesce(requeued_at, created_at)
                                     < now() - make_interval(secs => $9::float8)
                            THEN now() END,
        error_message = CASE WHEN $7 = 0 AND coalesce(requeued_at, created_at)
                                      < now() - make_interval(secs => $9::float8)
                             THEN left('Gave up: not finished within '
                                       || round(($9 / 3600.0)::numeric, 1) || ' h of being queued; last: '
                                       || $5, 1000)
                             ELSE $5 END,
        attempts = attempts + $7, locked_by = NULL, lease_expires_at = NULL,
        run_after = now() + make_interval(secs => $4), failed_step = $6,
        waiting_for = $11::text, updated_at = now()
    WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
    RETURNING id, claims, status, error_message, attempt_started_at, step_log
),
judged AS (
    SELECT moved.*,
           (moved.status = 'pending' AND $7 = 0 AND before.waiting_for = $11::text
            AND before.failed_step IS NOT DISTINCT FROM $6::text) AS unchanged
    FROM moved, before
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, error, owner, claimed_at,
                                   steps)
    SELECT id, CASE WHEN status = 'failed' THEN 'fail' ELSE $10::text END, claims, $6,
           CASE WHEN status = 'failed' THEN 'too old' ELSE $8::text END, error_message, $2,
           attempt_started_at, step_log
    FROM judged WHERE NOT unchanged
)
SELECT CASE WHEN unchanged THEN 'still waiting' ELSE status END FROM judged

-- fail_queue_item --
-- Failed for good ($4 error, $5 step, $6 reason), fenced; the failure is the item's own attempt.
WITH failed AS (
    UPDATE queue_items
    SET status = 'failed', locked_by = NULL, lease_expires_at = NULL, error_message = $4,
        failed_step = $5, attempts = attempts + 1, completed_at = now(), updated_at = now()
    WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
    RETURNING id, claims, attempt_started_at, step_log
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, error, owner, claimed_at,
                                   steps)
    SELECT id, 'fail', claims, $5, $6, $4, $2, attempt_started_at, step_log FROM failed
)
SELECT id FROM failed

-- cancel_running_queue_item --
-- The owner acknowledges a cancel request: cancelled, no email, fenced.
WITH cancelled AS (
    UPDATE queue_items
    SET status = 'cancelled', locked_by = NULL, lease_expires_at = NULL, completed_at = now(),
        updated_at = now()
    WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
    RETURNING id, claims, current_step, attempt_started_at, step_log
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, owner, claimed_at, steps)
    SELECT id, 'cancel', claims, current_step, $2, attempt_started_at, step_log FROM cancelled
)
SELECT id FROM cancelled

-- release_queue_item --
-- Shutdown: back to pending, due now, without charging an attempt (checkpoint kept), fenced.
WITH released AS (
    UPDATE queue_items
    SET status = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
        completed_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
        locked_by = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()
    WHERE id = $1 AND status = 'processing' AND locked_by = $2 AND claims = $3
    RETURNING id, claims, current_step, status, attempt_started_at, step_log
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, owner, claimed_at, steps)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancel' ELSE 'release' END, claims,
           current_step, 'shutdown', $2, attempt_started_at, step_log
    FROM released
)
SELECT id FROM released

-- seconds_until_next_due --
-- How long until the earliest pending item is due (read in run_after order from the partial
-- index), so an idle consumer wakes for a backed-off retry instead of waiting for the next poll.
-- An owner running jobs ($1 = false) counts no suspect (it claims none) and gets NULL (wait for
-- a wake-up or the poll) while a suspect is due for more than $2 seconds: it claims nothing until
-- its jobs drain, and each job's end wakes it.
SELECT CASE WHEN NOT $1::boolean AND EXISTS (
                SELECT 1 FROM queue_items
                WHERE status = 'pending' AND suspect
                  AND run_after <= now() - make_interval(secs => $2))
            THEN NULL
            ELSE (SELECT EXTRACT(EPOCH FROM run_after - now())
                  FROM queue_items WHERE status = 'pending' AND ($1::boolean OR NOT suspect)
                  ORDER BY run_after LIMIT 1) END

-- reap_expired_leases --
-- Up to $1 items whose owner stopped renewing. Losing the worker is not the item's fault: no
-- attempt is charged, `crashes` counts it. Whose crash it was (migration 0012): an item that ran
-- beside others becomes a suspect, claimed again only alone; a suspect's own (lone) run that
-- loses its worker counts in `blamed_crashes`. Cancelled if asked; failed once $3 lone runs lost
-- their worker (a poison item that kills its worker every time) or older than $4 seconds; else
-- pending again after $2[crashes + 1] seconds (the backoff schedule, scribe/queue/backoff.py).
WITH expired AS MATERIALIZED (
    SELECT id FROM queue_items
    WHERE status = 'processing' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
judged AS (
    SELECT q.id,
           CASE WHEN q.cancel_requested_at IS NOT NULL THEN 'cancelled'
                WHEN q.suspect AND q.blamed_crashes + 1 >= $3 THEN 'crashed'
                WHEN coalesce(q.requeued_at, q.created_at) < now() - make_interval(secs => $4)
                    THEN 'too old'
                ELSE 'pending' END AS verdict,
           'Worker lost during ' || coalesce(q.current_step, 'claim') || ' (lease expired)'
               AS lost
    FROM expired JOIN queue_items q ON q.id = expired.id
),
reaped AS (
    UPDATE queue_items q
    SET status = CASE WHEN j.verdict IN ('crashed', 'too old') THEN 'failed'
                      WHEN j.verdict = 'cancelled' THEN 'cancelled'
                      ELSE 'pending' END,
        crashes = q.crashes + CASE WHEN j.verdict = 'cancelled' THEN 0 ELSE 1 END,
        blamed_crashes = q.blamed_crashes
                         + CASE WHEN j.verdict <> 'cancelled' AND q.suspect THEN 1 ELSE 0 END,
        suspect = q.suspect OR j.verdict <> 'cancelled',
        completed_at = CASE WHEN j.verdict <> 'pending' THEN now() END,
        error_message = left(CASE j.verdict
            WHEN 'cancelled' THEN q.error_message
            WHEN 'crashed' THEN j.lost || ' ' || (q.blamed_crashes + 1)
                 || ' times running alone: the item probably crashes its worker'
            WHEN 'too old' THEN 'Gave up: not finished within ' || round(($4 / 3600.0)::numeric, 1)
                 || ' h of being queued; last: ' || j.lost
            ELSE j.lost END, 1000),
        failed_step = CASE WHEN j.verdict = 'cancelled' THEN q.failed_step
                           ELSE q.current_step END,
        run_after = now() + make_interval(
            secs => ($2::float8[])[least(q.crashes + 1, cardinality($2::float8[]))]),
        locked_by = NULL, lease_expires_at = NULL, updated_at = now()
    FROM judged j
    WHERE q.id = j.id
    RETURNING q.id, q.status, q.claims, q.current_step, q.error_message, j.verdict, j.lost,
              q.attempt_started_at, q.step_log
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, error, claimed_at, steps)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancel' ELSE 'reap' END, claims,
           current_step, CASE WHEN verdict = 'pending' THEN 'worker lost' ELSE verdict END,
           CASE WHEN status = 'cancelled' THEN NULL ELSE error_message END,
           attempt_started_at, step_log
    FROM reaped
)
SELECT id, status FROM reaped

-- prune_finished_queue_items --
-- Delete up to $2 finished items older than $1 seconds (their emails stay).
WITH doomed AS MATERIALIZED (
    SELECT id FROM queue_items
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND completed_at < now() - make_interval(secs => $1)
    ORDER BY completed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM queue_items q USING doomed WHERE q.id = doomed.id

-- prune_orphan_queue_batches --
-- Delete up to $2 batches older than $1 seconds whose items are all gone (a batch's items share
-- its user and creation time, so the check is a probe of queue_items_user_created_idx).
WITH doomed AS MATERIALIZED (
    SELECT b.id FROM queue_batches b
    WHERE b.created_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM queue_items q
                      WHERE q.user_id = b.user_id AND q.created_at = b.created_at
                        AND q.batch_id = b.id)
    ORDER BY b.created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM queue_batches b USING doomed WHERE b.id = doomed.id

-- queue_overview --
-- Counts by status, oldest pending age, last hour's throughput.
SELECT * FROM queue_overview

-- queue_active --
-- Processing items with owner, step and lease left.
SELECT * FROM queue_active

-- queue_failures --
-- Recent failures (and errors awaiting retry) with step and message.
SELECT * FROM queue_failures LIMIT 50

-- ping_listener --
-- A notification sent through the LISTEN connection itself, to prove it still receives.
SELECT pg_notify($1, $2)

-- ===== pipeline =====

-- claim_template_slot --
-- Count one generated template against the user's limit; no row when the limit is reached.
UPDATE users SET template_count = template_count + 1, updated_at = now()
WHERE id = $1 AND template_count < $2
RETURNING template_count

-- ===== admin page =====

-- admin_overview --
-- Service-wide figures for GET /api/admin/overview (rates are computed in Python): one pass over
-- emails and one over queue_items; the weekly figures read only the recent range.
SELECT
    (SELECT count(*) FROM users) AS total_users,
    (SELECT count(*) FROM templates) AS total_templates,
    e.total_emails, e.confident_emails,
    q.completed, q.failed, q.avg_gen_time_seconds,
    w.emails_this_week, w.active_users_this_week
FROM (
    SELECT count(*) AS total_emails, count(*) FILTER (WHERE is_confident) AS confident_emails
    FROM emails
) e, (
    SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           (EXTRACT(EPOCH FROM avg(completed_at - started_at)
                    FILTER (WHERE status = 'completed')))::float8 AS avg_gen_time_seconds
    FROM queue_items
) q, (
    SELECT count(*) AS emails_this_week, count(DISTINCT user_id) AS active_users_this_week
    FROM emails WHERE created_at > now() - interval '7 days'
) w

-- admin_list_users --
-- Every user with their email, queue and failure counts, most generations first (at most $1).
-- The counts are taken per listed user, each from its own index (emails_user_created_idx,
-- queue_items_user_created_idx, queue_items_user_failed_idx): the users past the limit cost
-- nothing, and no statement reads the whole emails or queue table.
SELECT u.id, u.email, u.display_name, u.generation_count, u.template_count, u.onboarded,
       u.created_at, u.email_template,
       (SELECT count(*) FROM emails e WHERE e.user_id = u.id) AS actual_email_count,
       (SELECT count(*) FROM queue_items q WHERE q.user_id = u.id) AS queue_submissions,
       (SELECT count(*) FROM queue_items q WHERE q.user_id = u.id AND q.status = 'failed')
           AS failed_count
FROM (SELECT * FROM users ORDER BY generation_count DESC, created_at, id LIMIT $1) u
ORDER BY u.generation_count DESC, u.created_at, u.id

-- admin_count_user_emails --
-- How many emails a user has, discarded ones included.
SELECT count(*) FROM emails WHERE user_id = $1

-- admin_list_user_emails --
-- A page of a user's emails, discarded ones included, newest first ($2 limit, $3 offset).
SELECT id, recipient_name, recipient_interest, email_message, template_type, is_confident,
       metadata, created_at
FROM emails
WHERE user_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2 OFFSET $3

-- admin_list_user_queue --
-- A user's queue items, cancelled ones included, newest first (at most $2).
SELECT id, recipient_name, recipient_interest, status, current_step, error_message, started_at,
       completed_at, created_at
FROM queue_items
WHERE user_id = $1
ORDER BY created_at DESC, seq DESC
LIMIT $2

-- admin_activity --
-- Emails and distinct users per UTC week (weeks start on Monday), the last $1 weeks, newest
-- first; weeks without emails are listed with zeros.
WITH weeks AS (
    SELECT (date_trunc('week', now() AT TIME ZONE 'UTC') - n * interval '1 week')::date AS week
    FROM generate_series(0, $1::int - 1) AS n
),
-- Per (week, user) first: a hash aggregate, where count(DISTINCT user_id) would sort every row.
per_user AS (
    SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week, user_id,
           count(*) AS emails
    FROM emails
    WHERE created_at >= (date_trunc('week', now() AT TIME ZONE 'UTC')
                         - ($1::int - 1) * interval '1 week') AT TIME ZONE 'UTC'
    GROUP BY 1, 2
),
counts AS (
    SELECT week, sum(emails)::bigint AS emails_generated, count(*) AS active_users
    FROM per_user GROUP BY week
)
SELECT weeks.week, coalesce(counts.emails_generated, 0) AS emails_generated,
       coalesce(counts.active_users, 0) AS active_users
FROM weeks LEFT JOIN counts USING (week)
ORDER BY weeks.week DESC

-- admin_list_errors --
-- Failed items newest first with their owner and the step that failed (at most $1).
SELECT q.id, u.email AS user_email, u.display_name AS user_display_name, q.recipient_name,
       coalesce(q.failed_step, q.current_step) AS current_step, q.error_message, q.created_at,
       q.started_at
FROM queue_items q
JOIN users u ON u.id = q.user_id
WHERE q.status = 'failed'
ORDER BY q.created_at DESC, q.seq DESC
LIMIT $1

-- ===== work bounds: per-user quotas and template-generation attempts =====

-- lock_user_quota --
-- Serialise one user's quota checks until the transaction ends (enqueue, template attempts).
SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || ':' || $2, 7263918403))

-- queue_quota_usage --
-- A user's items queued since 00:00 UTC, their live (pending or processing) items, and the
-- seconds until the UTC day ends (when the daily count starts again).
SELECT
    (SELECT count(*) FROM queue_items
     WHERE user_id = $1 AND created_at >= date_trunc('day', now(), 'UTC')) AS today,
    (SELECT count(*) FROM queue_items
     WHERE user_id = $1 AND status IN ('pending', 'processing')) AS live,
    extract(epoch FROM date_trunc('day', now(), 'UTC') + interval '1 day' - now())::float8
        AS reset_seconds

-- close_stale_template_attempts --
-- Close a user's attempts left running past $2 seconds (their process died mid-generation).
UPDATE template_attempts SET finished_at = now(), outcome = 'abandoned'
WHERE user_id = $1 AND finished_at IS NULL AND started_at < now() - make_interval(secs => $2)

-- template_attempt_usage --
-- Whether a user has a generation in flight, their counted attempts since 00:00 UTC, the seconds
-- until the UTC day ends, and whether a request with fingerprint $2 repeats the user's latest
-- attempt, counted and failed less than $3 seconds ago (a repeat of a repeat counts again, so
-- resending cannot go on uncounted).
SELECT
    EXISTS (SELECT 1 FROM template_attempts WHERE user_id = $1 AND finished_at IS NULL)
        AS in_flight,
    (SELECT count(*) FROM template_attempts
     WHERE user_id = $1 AND counted AND started_at >= date_trunc('day', now(), 'UTC')) AS today,
    extract(epoch FROM date_trunc('day', now(), 'UTC') + interval '1 day' - now())::float8
        AS reset_seconds,
    coalesce((SELECT fingerprint = $2 AND counted AND outcome <> 'stored'
                     AND finished_at > now() - make_interval(secs => $3)
              FROM template_attempts WHERE user_id = $1
              ORDER BY started_at DESC LIMIT 1), false) AS repeat

-- start_template_attempt --
-- Record a generation as in flight (the partial unique index refuses a second one), with its
-- request's fingerprint and whether it counts toward the daily limit.
INSERT INTO template_attempts (id, user_id, fingerprint, counted) VALUES ($1, $2, $3, $4)

-- finish_template_attempt --
-- Record how a generation ended; it no longer counts as in flight.
UPDATE template_attempts SET finished_at = now(), outcome = $2
WHERE id = $1 AND finished_at IS NULL

-- ===== operator re-queue, provider states and operator views =====

-- requeue_failed_items --
-- Operator re-queue of failed items, one statement: by ids $1, user $2, failed since $3, failed
-- step $4 (NULL = any; at least one is set by the caller), at most $5. Attempts and crashes
-- (suspicion included) start over, the checkpoint is kept (the runner resumes from it if it
-- still validates), the events stay; each gets a 'requeue' event with the error it had ($6 =
-- who asked).
WITH picked AS MATERIALIZED (
    SELECT id, error_message, failed_step FROM queue_items
    WHERE status = 'failed'
      AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))
      AND ($2::uuid IS NULL OR user_id = $2::uuid)
      AND ($3::timestamptz IS NULL OR completed_at >= $3::timestamptz)
      AND ($4::text IS NULL OR failed_step = $4::text)
    ORDER BY seq
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE queue_items q
    SET status = 'pending', attempts = 0, crashes = 0, suspect = false, blamed_crashes = 0,
        error_message = NULL, run_after = now(),
        completed_at = NULL, requeued_at = now(), cancel_requested_at = NULL, updated_at = now()
    FROM picked
    WHERE q.id = picked.id
    RETURNING q.id, q.claims
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, error, owner)
    SELECT r.id, 'requeue', r.claims, p.failed_step, 'operator', p.error_message, $6
    FROM requeued r JOIN picked p ON p.id = r.id
)
SELECT id FROM requeued

-- save_provider_state --
-- Record the state of provider account $1 ($2 up/rate_limited/down/paused, $3 reason, $4 since,
-- $5 when it takes calls again, $6 consecutive failures, $7 reporting process).
INSERT INTO provider_states (provider, state, reason, since, next_probe_at, failures,
                             reported_by, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (provider) DO UPDATE
SET state = excluded.state, reason = excluded.reason, since = excluded.since,
    next_probe_at = excluded.next_probe_at, failures = excluded.failures,
    reported_by = excluded.reported_by, updated_at = now()

-- providers_waiting --
-- Accounts some process reported down or paused and due to be tried within the last 15 minutes
-- (a report nobody followed up, e.g. its process died and no other needed the account since,
-- is stale), or rate-limited until a time still to come.
SELECT provider, state, reason, since FROM provider_states
WHERE (state IN ('down', 'paused') AND next_probe_at > now() - interval '15 minutes')
   OR (state = 'rate_limited' AND next_probe_at > now())
ORDER BY provider

-- provider_resumes --
-- When an operator last resumed each provider or account.
SELECT name, resumed_at FROM provider_resumes

-- resume_provider --
-- An operator ($2) ends the wait of $1, a provider or one account: recorded for every process to
-- apply, and its accounts reported up at once. Returns the accounts that were not up.
WITH recorded AS (
    INSERT INTO provider_resumes (name, resumed_at, resumed_by) VALUES ($1, now(), $2)
    ON CONFLICT (name) DO UPDATE
    SET resumed_at = excluded.resumed_at, resumed_by = excluded.resumed_by
)
UPDATE provider_states
SET state = 'up', reason = NULL, since = now(), next_probe_at = NULL, failures = 0,
    reported_by = $2, updated_at = now()
WHERE (provider = $1 OR starts_with(provider, $1 || ':')) AND state <> 'up'
RETURNING provider

-- queue_workers --
-- Processes holding items, with their heartbeat age.
SELECT * FROM queue_workers

-- queue_step_durations --
-- p50/p95 per step over the last hour and day, pacing wait apart.
SELECT * FROM queue_step_durations

-- queue_transient_errors --
-- Failures that did not end their item, last 24 h (newest first).
SELECT * FROM queue_transient_errors LIMIT 50

-- queue_providers --
-- Provider accounts' states as last reported.
SELECT * FROM queue_providers

-- wake_provider_waiters --
-- Provider or account $1 is back: items waiting for it are due now (not when they were parked
-- until).
UPDATE queue_items SET run_after = now(), updated_at = now()
WHERE status = 'pending' AND (waiting_for = $1 OR starts_with(waiting_for, $1 || ':'))
  AND run_after > now()

-- ===== engine: results written inside the queue's completion transaction =====

-- insert_completed_email --
-- The email of a queue item being completed ($1 id, $2 item, $3 user, $4 name, $5 interest,
-- $6 message, $7 template type, $8 metadata, $9 confident): stored, linked from the item and
-- counted for the user, in the transaction of complete_queue_item (so all or nothing).
WITH email AS (
    INSERT INTO emails (id, user_id, queue_item_id, recipient_name, recipient_interest,
                        email_message, template_type, metadata, is_confident)
    VALUES ($1, $3, $2, $4, $5, $6, $7, $8, $9)
    RETURNING id, user_id, queue_item_id
),
linked AS (
    UPDATE queue_items SET email_id = email.id
    FROM email WHERE queue_items.id = email.queue_item_id
)
UPDATE users SET generation_count = generation_count + 1, updated_at = now()
FROM email WHERE users.id = email.user_id

-- ==== pacing: processes sharing each provider account (provider_users, migration 0007) ====

-- share_provider_accounts --
-- Process $1 used accounts $2 just now (refresh its rows; drop rows idle 10 x $4 seconds); for
-- each account of $3, the processes that used it within $4 seconds, $1 counted in.
WITH touched AS (
    INSERT INTO provider_users (account, owner, seen_at)
    SELECT account, $1, now() FROM unnest($2::text[]) AS used(account)
    ON CONFLICT (account, owner) DO UPDATE SET seen_at = excluded.seen_at
    RETURNING account
), stale AS (
    -- Idle rows (dead or idle processes) are deleted, so the table stays one row per live user.
    DELETE FROM provider_users WHERE seen_at < now() - make_interval(secs => $4::float8 * 10)
)
SELECT known.account,
       1 + (SELECT count(*) FROM provider_users other
            WHERE other.account = known.account AND other.owner <> $1
              AND other.seen_at > now() - make_interval(secs => $4::float8))::int AS users
FROM unnest($3::text[]) AS known(account)

-- leave_provider_accounts --
-- Process $1 stops: the others may take its part of every account at once.
DELETE FROM provider_users WHERE owner = $1

-- ===== backup, restore and upgrade =====

-- server_version_num --
-- The server's version as a number (170010 is 17.10): its major is the number / 10000.
SELECT current_setting('server_version_num')::int

-- list_databases --
-- The databases a server's data lives in (templates and closed ones hold none of it).
SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname

-- create_row_counter --
-- A session-only function counting a table's rows exactly (a table name cannot be a parameter,
-- and nothing is written to the database: pg_temp ends with the session).
CREATE OR REPLACE FUNCTION pg_temp.count_rows(target regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    counted bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', target) INTO counted;
    RETURN counted;
END
$$

-- table_row_counts --
-- Every table of the database with its exact row count (create_row_counter first).
SELECT n.nspname || '.' || c.relname AS name, pg_temp.count_rows(c.oid) AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1

-- public_table_count --
-- How many tables the schema scribe's migrations write (public) holds: 0 for an empty database.
SELECT count(*) FROM pg_tables WHERE schemaname = 'public'

-- other_scribe_sessions --
-- Other connections of scribe processes (application_name scribe) to this database.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'scribe'

-- empty_public_schema --
-- `scribe restore --force`: drop everything in the schema public, which stays (empty).
DROP SCHEMA public CASCADE;
CREATE SCHEMA public

-- release_restored_items --
-- After a restore, the items a worker held when the backup was taken have no worker: pending
-- again and due now (cancelled if a cancel was asked), charged neither an attempt nor a crash.
WITH released AS (
    UPDATE queue_items
    SET status = CASE WHEN cancel_requested_at IS NULL THEN 'pending' ELSE 'cancelled' END,
        completed_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
        locked_by = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()
    WHERE status = 'processing'
    RETURNING id, claims, current_step, status, attempt_started_at, step_log
),
logged AS (
    INSERT INTO queue_item_events (item_id, kind, claim, step, reason, owner, claimed_at, steps)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancel' ELSE 'release' END, claims,
           current_step, 'restored from a backup', 'restore', attempt_started_at, step_log
    FROM released
)
SELECT count(*) FROM released
