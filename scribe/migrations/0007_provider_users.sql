-- Which processes use which provider account lately: each process's pacer takes 1/n of the
-- account's limits, n counted here (serve-only processes included: their template-generation
-- calls share the account too). One row per process and account, refreshed every few seconds
-- while the process uses the account; rows of dead processes age out of the count.
CREATE TABLE provider_users (
    account text NOT NULL,
    owner   text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, owner)
);
