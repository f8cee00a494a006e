-- Each claim on an outbox item has its own token: every change a sender makes to the item
-- (sent, failed, released, lease renewed) is conditional on the claim it holds, so a sender
-- whose lease ran out and was taken over changes nothing.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
-- The items still to deliver, per target in queue order: an item is claimed only when no
-- earlier item of its target is still pending or sending (delivery in order per target).
CREATE INDEX outbox_target_open ON outbox (target, id) WHERE status IN ('pending', 'sending');
