-- Business days left are worked out from the deadline whenever findings are read, as of the
-- date they are read for: an evaluation no longer rewrites every open finding each day only
-- because the count moved (a million findings rewritten daily, with their index entries).
-- `findings.business_days_left` keeps the count as of the evaluation that last wrote the
-- finding. Open findings are listed by deadline, which orders them as days left do.
DROP INDEX findings_open_order;
CREATE INDEX findings_open_order ON findings (deadline, contract_id, kind, stage)
    WHERE status = 'open';
