-- inbox: chat turns the bot accepted and has not finished, so that a
-- message waiting behind another in its conversation survives a crash.
-- payload is the chat engine's own JSON; it may hold a Discord interaction
-- token (a credential for 15 minutes), so a row is deleted as soon as its
-- turn ends and secure_delete zeroes it. job_id is the id the turn's job
-- has, or will have, in the journal (jobs); no foreign key: the row comes
-- first.
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY,
    conversation TEXT    NOT NULL CHECK (conversation <> ''),
    platform     TEXT    NOT NULL CHECK (platform <> ''),
    payload      BLOB    NOT NULL,
    job_id       TEXT    CHECK (job_id <> ''),
    created_at   INTEGER NOT NULL
) STRICT;
