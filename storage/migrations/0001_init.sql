-- 0001_init: the initial schema.
--
-- Conventions: times are INTEGER unix milliseconds (NULL = not yet), tables are
-- STRICT so a wrong Go type fails loudly instead of being stored as something
-- else, and every child row cascades with its parent.

-- meta holds facts about the database itself, such as the encryption key
-- check value.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- users: one row per platform identity; the same person on Discord and on
-- Matrix is two users.
CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    platform         TEXT    NOT NULL CHECK (platform <> ''),
    platform_user_id TEXT    NOT NULL CHECK (platform_user_id <> ''),
    display_name     TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (platform, platform_user_id)
) STRICT;

-- horde_keys: at most one linked AI Horde key per user. key_sealed is
-- AES-256-GCM output bound to the row (see crypto.go); the plaintext key is
-- never stored.
CREATE TABLE horde_keys (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_sealed     BLOB    NOT NULL,
    horde_username TEXT    NOT NULL DEFAULT '',
    horde_user_id  INTEGER NOT NULL DEFAULT 0,
    linked_at      INTEGER NOT NULL
) STRICT;

-- api_tokens: personal tokens for the /v1 endpoint. Only the SHA-256 of the
-- token is stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL DEFAULT '',
    token_hash   BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

-- user_settings: per-user defaults. Sampler knobs live in one JSON object so
-- that a new knob needs no migration.
CREATE TABLE user_settings (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    model         TEXT    NOT NULL DEFAULT '',
    system_prompt TEXT    NOT NULL DEFAULT '',
    sampler       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(sampler)),
    updated_at    INTEGER NOT NULL
) STRICT;

-- conversations: key is the adapter's opaque conversation id. Ended
-- conversations keep their rows (and history); only one row per key may be
-- active, which is what lets /new start afresh.
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY,
    key           TEXT    NOT NULL CHECK (key <> ''),
    system_prompt TEXT    NOT NULL DEFAULT '',
    model         TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    ended_at      INTEGER
) STRICT;
CREATE UNIQUE INDEX conversations_active_key ON conversations (key) WHERE ended_at IS NULL;

-- messages: the history of a conversation. author_user_id has no index of its
-- own: nothing deletes users today; add one with any "forget me" feature.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    conversation_id     INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role                TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    author_user_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    name                TEXT    NOT NULL DEFAULT '',
    content             TEXT    NOT NULL,
    platform_message_id TEXT    NOT NULL DEFAULT '',
    horde_request_id    TEXT    NOT NULL DEFAULT '',
    model               TEXT    NOT NULL DEFAULT '',
    kudos               REAL    NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL
) STRICT;
-- Serves LastMessages (seek + walk back 'limit' entries), CountMessages and
-- the ON DELETE CASCADE from conversations.
CREATE INDEX messages_conversation_id ON messages (conversation_id, id);
-- Serves PruneMessages.
CREATE INDEX messages_created_at ON messages (created_at);

-- jobs: the journal of Horde jobs, so a restart loses nothing in flight.
-- request and result are the caller's opaque JSON. Never holds API keys.
CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY CHECK (id <> ''),
    horde_request_id TEXT    NOT NULL DEFAULT '',
    principal        TEXT    NOT NULL DEFAULT '',
    target           TEXT    NOT NULL DEFAULT '',
    request          BLOB,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'submitted', 'done', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    error            TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    submitted_at     INTEGER,
    finished_at      INTEGER,
    result           BLOB,
    -- A job has a finish time exactly when it is in a final state.
    CHECK ((state IN ('done', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
) STRICT;
-- Serves UnfinishedJobs at start-up without scanning the finished history.
CREATE INDEX jobs_unfinished ON jobs (created_at) WHERE state IN ('pending', 'submitted');
-- Serves PruneFinishedJobs.
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
