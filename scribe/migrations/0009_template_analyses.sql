-- A template's analysis (its type and placeholders) depends on the template alone: it is asked of
-- the model once and kept here, so every item of a batch, every worker process and a retry after
-- a crash reuse it instead of paying for it again. The key is a hash of what the analysis
-- depends on (the analysis format's version, the model, the user, the template), so a new model
-- or prompt simply misses. Rows are small; retention deletes them at the queue's retention age
-- (a template still in use past it is analysed once more).
CREATE TABLE template_analyses (
    key         text PRIMARY KEY,
    analysis    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_analyses_created_idx ON template_analyses (created_at);
