-- Per-user usage (/me) and a future "forget me" look messages up by author.
CREATE INDEX messages_author ON messages (author_user_id) WHERE author_user_id IS NOT NULL;
