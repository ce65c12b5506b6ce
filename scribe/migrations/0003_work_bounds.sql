-- Work bounds: template-generation attempts, for one-in-flight and a daily limit.

-- One row per POST /api/templates/ that got past the checks: finished_at stays NULL while it
-- runs. The partial unique index is the "one generation in flight per user" rule, across
-- processes; a row a crashed process left unfinished is closed as 'abandoned' once stale.
CREATE TABLE template_attempts (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('stored', 'failed', 'limit', 'abandoned'))
);
CREATE UNIQUE INDEX template_attempts_in_flight_idx ON template_attempts (user_id)
    WHERE finished_at IS NULL;
CREATE INDEX template_attempts_user_started_idx ON template_attempts (user_id, started_at);
