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

-- schema_migrations_exists --
-- Whether the migration ledger exists yet.
SELECT to_regclass('schema_migrations') IS NOT NULL

-- lock_migrations --
-- Serialise migrators across processes until the end of the transaction.
SELECT pg_advisory_xact_lock(7263918401)

-- list_schema_migrations --
-- Applied migrations in order.
SELECT version, checksum FROM schema_migrations ORDER BY version

-- get_schema_migration --
-- Checksum of one applied migration (NULL if not applied).
SELECT checksum FROM schema_migrations WHERE version = $1

-- insert_schema_migration --
-- Record a migration as applied.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)

-- ping --
-- Liveness probe.
SELECT 1

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

-- ===== pipeline =====

-- claim_template_slot --
-- Count one generated template against the user's limit; no row when the limit is reached.
UPDATE users SET template_count = template_count + 1, updated_at = now()
WHERE id = $1 AND template_count < $2
RETURNING template_count

-- insert_template --
-- Store a generated template (in the same transaction as claim_template_slot).
INSERT INTO templates (id, user_id, pdf_url, template_text, user_instructions)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, user_id, pdf_url, template_text, user_instructions, created_at
