-- Silences (Alertmanager's model): matchers that keep findings out of digests, and webhooks
-- when asked, on the days [starts_on, ends_on). Never deleted: expiring one moves ends_on
-- to the day it was expired and records when.
CREATE TABLE silences (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers            TEXT NOT NULL,
    starts_on           TEXT NOT NULL,
    ends_on             TEXT NOT NULL,
    webhooks            INTEGER NOT NULL,
    author              TEXT NOT NULL,
    comment             TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    expired_at          TEXT
);
CREATE INDEX silences_ends ON silences (ends_on);
