-- Documents published on a process without a contract number count for every contract of
-- that process: the evaluation joins them on proceso.
CREATE INDEX documents_process ON documents (proceso);

-- `cierre evaluate` lists open findings most urgent first, a keyset page at a time.
CREATE INDEX findings_open_order ON findings (business_days_left, contract_id, kind, stage)
    WHERE status = 'open';

-- Every finding is either open or resolved: an index on status alone only misleads the
-- planner away from the partial indexes above (the evaluation reads open findings by
-- contract range through findings_one_open).
DROP INDEX findings_status;
