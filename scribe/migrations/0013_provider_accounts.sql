-- Provider accounts have one state machine (scribe/providers/account.py): besides up and down,
-- an account is paused (the provider refused its key or credit) or rate-limited (calls wait
-- long for its limit); every state is shared here so /health and /metrics show each account.
ALTER TABLE provider_states DROP CONSTRAINT provider_states_state_check;
ALTER TABLE provider_states ADD CONSTRAINT provider_states_state_check
    CHECK (state IN ('up', 'rate_limited', 'down', 'paused'));

-- An operator's `scribe providers resume NAME` (a provider or one account): every process
-- applies a resume newer than the one it saw last, within its sharing interval.
CREATE TABLE provider_resumes (
    name       text PRIMARY KEY,
    resumed_at timestamptz NOT NULL DEFAULT now(),
    resumed_by text
);
