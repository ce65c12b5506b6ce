-- Initial schema: users, emails, templates, queue_items.
-- Field names of users/emails/templates and the frontend-visible queue fields are a contract
-- with the frontend (DESIGN §6); the rest of queue_items is the queue engine's (DESIGN §3–4).

CREATE TABLE users (
    id               uuid PRIMARY KEY,                      -- the Supabase `sub`
    email            text NOT NULL,
    display_name     text,
    generation_count integer NOT NULL DEFAULT 0 CHECK (generation_count >= 0),
    template_count   integer NOT NULL DEFAULT 0 CHECK (template_count >= 0),
    onboarded        boolean NOT NULL DEFAULT false,
    email_template   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE queue_items (
    id                  uuid PRIMARY KEY,
    seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- FIFO order, batch tie-break
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    batch_id            uuid,
    recipient_name      text NOT NULL,
    recipient_interest  text NOT NULL,
    email_template      text NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    current_step        text,
    failed_step         text,
    email_id            uuid,
    error_message       text CHECK (char_length(error_message) <= 1000),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after           timestamptz NOT NULL DEFAULT now(),
    locked_by           text,
    lease_expires_at    timestamptz,
    step_timings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    checkpoint          jsonb,
    cancel_requested_at timestamptz,
    idempotency_key     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'processing') = (locked_by IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- Live states only: the claim reads due pending rows, the reaper expired leases. Finished rows
-- (the vast majority over time) never enter these indexes.
CREATE INDEX queue_items_pending_idx ON queue_items (run_after, seq) WHERE status = 'pending';
CREATE INDEX queue_items_pending_user_idx ON queue_items (user_id, seq) WHERE status = 'pending';
CREATE INDEX queue_items_processing_idx ON queue_items (lease_expires_at) WHERE status = 'processing';
CREATE INDEX queue_items_finished_idx ON queue_items (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX queue_items_user_created_idx ON queue_items (user_id, created_at);
CREATE INDEX queue_items_idempotency_idx ON queue_items (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE emails (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    queue_item_id      uuid UNIQUE REFERENCES queue_items (id) ON DELETE SET NULL,
    recipient_name     text NOT NULL,
    recipient_interest text NOT NULL,
    email_message      text NOT NULL,
    template_type      text NOT NULL CHECK (template_type IN ('research', 'book', 'general')),
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_confident       boolean NOT NULL DEFAULT false,
    displayed          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emails_user_created_idx ON emails (user_id, created_at DESC, id DESC);

CREATE TABLE templates (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pdf_url           text NOT NULL,
    template_text     text NOT NULL,
    user_instructions text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_user_created_idx ON templates (user_id, created_at DESC, id DESC);
