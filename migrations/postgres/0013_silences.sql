-- Silences (Alertmanager's model): matchers that keep findings out of digests, and webhooks
-- when asked, on the days [starts_on, ends_on). Never deleted: expiring one moves ends_on
-- to the day it was expired and records when.
CREATE TABLE silences (
    id                  BIGSERIAL PRIMARY KEY,
    matchers            TEXT NOT NULL,
    starts_on           DATE NOT NULL,
    ends_on             DATE NOT NULL,
    webhooks            BOOLEAN NOT NULL,
    author              TEXT NOT NULL,
    comment             TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    expired_at          TIMESTAMPTZ
);
CREATE INDEX silences_ends ON silences (ends_on);
