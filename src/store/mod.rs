//! Store: the one place state lives — synced records, sync progress, quarantine, findings
//! and their history, the notification outbox and the job runs. One small trait per stage
//! ([`crate::sync::SyncStore`], [`FindingStore`], [`DigestStore`], [`OutboxStore`],
//! [`RunStore`]), one module per backend holding all of its SQL (`sqlite/`, `postgres/`),
//! and the backend chosen once at start-up ([`Backend`]): code above is generic over
//! [`Store`].

pub mod postgres;
pub mod sqlite;
pub mod table;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};

use crate::config::Settings;
use crate::domain::ack::{Acknowledgement, HistoryEntry, ManualClassification, NewAck};
use crate::domain::silence::{NewSilence, Silence};
use crate::domain::{Contract, Document, Guarantee};
use crate::domain::{Finding, StoredFinding};
use crate::error::StoreResult;
use crate::sync::{Committed, SyncStore};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Where a page of [`FindingStore::open_findings_sorted`] ends: the sort key of its last finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingCursor {
    pub deadline: NaiveDate,
    pub contract_id: String,
    pub kind: String,
    pub stage: String,
}

impl FindingCursor {
    pub fn of(f: &Finding) -> FindingCursor {
        FindingCursor {
            deadline: f.deadline,
            contract_id: f.contract_id.clone(),
            kind: f.kind.as_str().to_string(),
            stage: f.stage_str().to_string(),
        }
    }
}

/// The documents and guarantees of the contracts of an evaluation page, for the rules.
#[derive(Debug, Default)]
pub struct DossierFacts {
    /// Each document with the id of the contract it counts for: its own
    /// (`n_mero_de_contrato`), or each contract of its process when it has none. The same
    /// document may come twice for a contract; deduplicate by `id_documento`.
    pub documents: Vec<(String, Document)>,
    pub guarantees: Vec<Guarantee>,
    /// The documents office heads classified by hand (`id_documento` → kind), read in the
    /// same snapshot as the findings (whose answers may name them). A short table: read
    /// whole.
    pub classified: std::collections::HashMap<String, String>,
}

/// What [`FindingStore::evaluation_page`] reads.
#[derive(Debug, Default)]
pub struct EvaluationPage {
    pub contracts: Vec<Contract>,
    /// The end of the id range read: the last contract, or `None` on the last page (and
    /// always for a list of ids).
    pub up_to: Option<String>,
    pub facts: DossierFacts,
    pub open: Vec<StoredFinding>,
    /// What the last evaluation of each contract of the range (or list) kept, vanished
    /// contracts' included.
    pub kept: Vec<ContractEvaluation>,
}

/// The contracts an evaluation page reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Up to `limit` live contracts after `after` in id order; the facts, open findings and
    /// kept evaluations of the id range they cover (to the end on the last page), so that
    /// contracts gone since are seen too.
    After { after: String, limit: u32 },
    /// These contract ids (live or not), sorted.
    Ids(Vec<String>),
}

/// What an evaluation keeps of one contract: what its conclusion depended on, until when it
/// holds, and what the evaluation's report counts of it — so that the next evaluation can
/// leave it alone and still report every contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractEvaluation {
    pub contract_id: String,
    /// A fingerprint of the contract row, its documents (with their kinds), its guarantees
    /// and the answers in force on its findings.
    pub inputs: i64,
    /// The first date on which its findings or their levels may change on the same data.
    pub next_on: Option<NaiveDate>,
    pub quality: crate::domain::Quality,
    /// Its findings as `kind:level`, comma-separated, sorted (empty: none).
    pub findings: String,
    /// Whether no route matches the contract (its findings go to the fallback recipient).
    pub unrouted: bool,
}

/// Contracts whose evaluation may be out of date: written by the store itself (triggers) in
/// the transaction that changes a contract row, a document, a guarantee, a classification
/// or adds an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationMark {
    pub seq: i64,
    pub contract_id: Option<String>,
    /// A document published on a process (no contract number): every contract of it.
    pub process: Option<String>,
}

/// The last complete evaluation: the fingerprint of what it was evaluated with (settings,
/// calendar, program) and its date. An evaluation under another fingerprint, or as of an
/// earlier date, is a full one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedState {
    pub fingerprint: String,
    pub as_of: NaiveDate,
}

/// Kept evaluations grouped by what a report counts of them, with how many share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSummary {
    pub findings: String,
    pub unrouted: bool,
    pub quality: crate::domain::Quality,
    pub contracts: u64,
}

/// What an incremental evaluation keeps between runs (beside the findings).
pub trait EvaluationStore: Send + Sync {
    /// The last complete evaluation, if any, and none while a full one is under way.
    fn evaluated_state(&self) -> impl Future<Output = StoreResult<Option<EvaluatedState>>> + Send;
    /// A full evaluation begins: until it ends, no evaluation may be incremental. Returns the
    /// marks there are now, as ranges of `seq` (it accounts for them all).
    fn begin_full_evaluation(&self) -> impl Future<Output = StoreResult<Vec<(i64, i64)>>> + Send;
    /// Up to `limit` marks, oldest first.
    fn evaluation_marks(
        &self,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<EvaluationMark>>> + Send;
    /// Up to `limit` contracts whose kept evaluation holds only until `as_of` or earlier.
    fn evaluations_due(
        &self,
        as_of: NaiveDate,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// The live contracts of these processes.
    fn contracts_of_processes(
        &self,
        processes: &[String],
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Every kept evaluation, grouped ([`KeptSummary`]).
    fn kept_summary(&self) -> impl Future<Output = StoreResult<Vec<KeptSummary>>> + Send;
    /// An evaluation ended: the marks it accounted for (ranges of `seq`) go, and `state`
    /// is the last complete evaluation.
    /// `full`: the evaluation was a full one and `state` replaces the last; otherwise only
    /// its date moves, and only while the last one's fingerprint is still `state`'s.
    fn end_evaluation(
        &self,
        state: &EvaluatedState,
        full: bool,
        marks: &[(i64, i64)],
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// What an evaluation changes in the stored findings.
#[derive(Debug, Default, Clone)]
pub struct FindingChanges {
    pub opened: Vec<Finding>,
    /// Open findings whose level changed (`escalated` when more urgent).
    pub relevelled: Vec<(i64, Finding, &'static str)>,
    /// Open findings still true whose conclusion moved (reasons, dates, missing documents;
    /// not the days left alone, which are counted whenever findings are read).
    pub refreshed: Vec<(i64, Finding)>,
    pub resolved: Vec<i64>,
    /// Answers in force that no longer hold: (finding id, answer id, why in Spanish). The
    /// finding is shown again; the answer ends, unless it was answered again meanwhile.
    pub reopened: Vec<(i64, i64, String)>,
    /// What the evaluation keeps of each contract it evaluated (new or different only).
    pub kept: Vec<ContractEvaluation>,
    /// Contracts gone from the store: what was kept of them goes.
    pub forgotten: Vec<String>,
}

/// An item to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    pub idempotency_key: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// The recipient address or the endpoint URL.
    pub target: String,
    pub subject: Option<String>,
    /// Email Message-ID or webhook-id: the same on every attempt.
    pub message_id: Option<String>,
    /// The formatted email, or the webhook body.
    pub payload: String,
}

/// An outbox item as stored.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The process holding (or that last held) the claim.
    pub claimed_by: Option<String>,
    /// The claim's own token: a new one at each claim.
    pub claim_token: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was sent, or given up (dead).
    pub finished_at: Option<DateTime<Utc>>,
}

impl OutboxItem {
    /// The claim under which this item was handed out by [`OutboxStore::claim_due`].
    pub fn claim(&self) -> Claim {
        Claim {
            by: self.claimed_by.clone().unwrap_or_default(),
            token: self.claim_token.clone().unwrap_or_default(),
        }
    }
}

/// A page of the outbox or of the delivery history, newest first: the items matching every
/// filter given, with an id below `before` (the last id of the previous page).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct OutboxPage {
    pub status: Option<String>,
    pub channel: Option<String>,
    pub target: Option<String>,
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// With each item's payload; lists shown to people leave it out (`""`): a digest with
    /// its workbook weighs up to megabytes, and a page of them would too.
    #[serde(default)]
    pub payload: bool,
}

impl OutboxPage {
    /// Every item, newest first, with its payload.
    pub fn all() -> OutboxPage {
        OutboxPage { limit: u32::MAX, payload: true, ..OutboxPage::default() }
    }
}

/// A finished outbox item past its retention, as the delivery history keeps it: without its
/// payload, under the outbox item's id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    pub subject: Option<String>,
    /// The email Message-ID or the webhook-id it went with.
    pub message_id: Option<String>,
    /// `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Which dead items an operator queues again: every one given matches (none: all dead).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RequeueFilter {
    pub channel: Option<String>,
    pub target: Option<String>,
    pub id: Option<i64>,
}

/// A new claim token: unique per claim (time and randomness), never reused by a process.
pub(crate) fn claim_token() -> String {
    format!("{:x}-{:016x}", chrono::Utc::now().timestamp_micros(), fastrand::u64(..))
}

/// A claim on an outbox item: the process holding it and the claim's token. Every change
/// to a claimed item is conditional on it, so a sender that lost its claim changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub by: String,
    pub token: String,
}

/// A target's delivery health.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    pub target: String,
    pub consecutive_failures: i64,
    pub suspended_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// How many outbox items are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting for their first attempt.
    pub pending: u64,
    /// Failed before, waiting for a retry.
    pub retrying: u64,
    pub sending: u64,
    pub sent: u64,
    pub dead: u64,
}

impl OutboxCounts {
    /// Counts `n` items in `state` (a status, or `retrying` for a pending item that has
    /// failed before); any other state is not counted.
    pub fn set(&mut self, state: &str, n: u64) {
        match state {
            "pending" => self.pending = n,
            "retrying" => self.retrying = n,
            "sending" => self.sending = n,
            "sent" => self.sent = n,
            "dead" => self.dead = n,
            _ => {}
        }
    }
}

/// One run of a job, for the run history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    /// The row's id once stored (the cursor of the run history's pages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub job: String,
    /// The slot the run belongs to: one run per (job, slot).
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok` or `failed`.
    pub outcome: String,
    pub counts: serde_json::Value,
    pub error: Option<String>,
    /// The process that ran it ([`crate::replica_id`]).
    pub owner: Option<String>,
}

/// A run still `running`, as a starting replica judges whether its process is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningRun {
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
    pub owner: Option<String>,
    /// The last sign of life: the heartbeat, or the start.
    pub alive_at: DateTime<Utc>,
}

/// The contracts and findings, as the evaluation, the listings and the digests use them.
pub trait FindingStore: Send + Sync {
    fn contract(&self, id: &str) -> impl Future<Output = StoreResult<Option<Contract>>> + Send;
    /// One page of an evaluation ([`Selection`]): contracts, with the documents, guarantees,
    /// open findings and kept evaluations of their ids, in one snapshot.
    fn evaluation_page(
        &self,
        selection: &Selection,
    ) -> impl Future<Output = StoreResult<EvaluationPage>> + Send;
    /// Open findings most urgent first (earliest deadline, then contract id, kind, stage),
    /// the page after `after`. Their business days left are as stored, counted by the
    /// evaluation that last wrote them: readers recount ([`Finding::count_days_from`]).
    fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<StoredFinding>>> + Send;
    /// Records the changes and queues their notifications (`events`) in one transaction, so
    /// a change is never recorded without its webhook events, nor the other way round.
    /// Returns how many findings it opened (another replica may have opened some first).
    fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Open findings counted by kind and level.
    fn findings_summary(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<(String, String, u64)>>> + Send;
}

/// A finding as a digest shows it: with its contract and the last day it escalated.
#[derive(Debug, Clone)]
pub struct DigestFinding {
    pub stored: StoredFinding,
    pub escalated_on: Option<NaiveDate>,
    pub resolved_on: Option<NaiveDate>,
    pub contract: Contract,
}

/// What a list of findings keeps (each `None`: any), applied by the store's query so the rows
/// left out are never read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub kind: Option<String>,
    pub level: Option<String>,
    /// The contract's `nit_entidad`.
    pub entity: Option<String>,
}

/// Where a page of [`DigestStore::resolved_page`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedCursor {
    pub resolved_on: NaiveDate,
    pub id: i64,
}

/// What digests read: findings in pages with their contracts, and each recipient's
/// previous digest (what changed is counted since then).
pub trait DigestStore: Send + Sync {
    /// Open findings after finding id `after` that pass `filter`, in id order, each with
    /// its contract (a finding whose contract is not stored is left out).
    fn digest_page(
        &self,
        after: i64,
        filter: &FindingFilter,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DigestFinding>>> + Send;
    /// Open findings most urgent first (as [`FindingStore::open_findings_sorted`]) that
    /// pass `filter`, the page after `after`, each with its contract.
    fn urgent_page(
        &self,
        after: Option<&FindingCursor>,
        filter: &FindingFilter,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DigestFinding>>> + Send;
    /// The findings of `ids` (open or not), with their contracts, in id order.
    fn digest_findings(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = StoreResult<Vec<DigestFinding>>> + Send;
    /// Findings resolved after `since`, the page after `after` (by day resolved, then id).
    fn resolved_page(
        &self,
        since: NaiveDate,
        after: Option<ResolvedCursor>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DigestFinding>>> + Send;
    /// Records that `recipient` (lowercase) was sent the digest of `slot` with `rows` rows;
    /// a second record of the same slot changes nothing.
    fn record_digest(
        &self,
        recipient: &str,
        slot: NaiveDate,
        rows: u64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Each recipient's latest digest slot before `slot`.
    fn previous_digests(
        &self,
        slot: NaiveDate,
    ) -> impl Future<Output = StoreResult<Vec<(String, NaiveDate)>>> + Send;
    /// Removes the digest slots before `before`, but each recipient's latest (the next
    /// digest counts its changes from it); returns how many.
    fn purge_digests(&self, before: NaiveDate) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// A page of a list in id order: at most `limit` rows past id `from` (below it for a list
/// newest first, above it for one oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPage {
    pub from: Option<i64>,
    pub limit: u32,
}

impl IdPage {
    /// The whole list, for the jobs that need every row (the silences in force).
    pub const ALL: IdPage = IdPage { from: None, limit: u32::MAX };
}

/// Silences: created, listed and expired by administrators; read by digests and the
/// evaluation's webhook events.
pub trait SilenceStore: Send + Sync {
    fn add_silence(
        &self,
        silence: &NewSilence,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Every silence (ended ones too when `all`), or those in force or to come on `day`, by
    /// id, oldest first: the page after `page.from`.
    fn silences(
        &self,
        day: NaiveDate,
        all: bool,
        page: IdPage,
    ) -> impl Future<Output = StoreResult<Vec<Silence>>> + Send;
    /// Ends silence `id` on `day` (it is no longer in force from then) unless it has ended
    /// by then; true when it was in force or to come.
    fn expire_silence(
        &self,
        id: i64,
        day: NaiveDate,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Office heads' answers on findings, the history they join, and the documents they
/// classified by hand.
pub trait AckStore: Send + Sync {
    /// A finding by id, open or not.
    fn finding(&self, id: i64) -> impl Future<Output = StoreResult<Option<StoredFinding>>> + Send;
    /// The open findings of a contract, by kind and stage.
    fn open_findings_of(
        &self,
        contract_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<StoredFinding>>> + Send;
    /// Records an answer on open finding `finding_id`, in one transaction: the answer in
    /// force before ends, the finding carries the new one (with its level and facts), its
    /// history says so, a `documento_publicado` classifies its document, and `events` are
    /// queued. `None` when the finding is no longer open (nothing is written).
    fn acknowledge(
        &self,
        finding_id: i64,
        ack: &NewAck,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Option<i64>>> + Send;
    /// Answers, newest first: those in force (every one when `all`), of one finding when
    /// given; the page below `page.from`.
    fn acknowledgements(
        &self,
        finding_id: Option<i64>,
        all: bool,
        page: IdPage,
    ) -> impl Future<Output = StoreResult<Vec<Acknowledgement>>> + Send;
    /// Open findings with an answer in force, counted by state.
    fn acknowledgement_counts(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<(String, u64)>>> + Send;
    /// Everything that happened to a finding, oldest first.
    fn finding_history(
        &self,
        finding_id: i64,
    ) -> impl Future<Output = StoreResult<Vec<HistoryEntry>>> + Send;
    /// The documents classified by hand, by id.
    fn manual_classifications(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<ManualClassification>>> + Send;
    /// A stored document's contract and process (`id_contrato`, `proceso`), unless it has
    /// vanished from the source.
    fn document_owner(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<(Option<String>, Option<String>)>>> + Send;
}

/// The notification outbox and the health of its targets, as notify and deliver use them.
pub trait OutboxStore: Send + Sync {
    /// Inserts unless an item with the same idempotency key exists; true when inserted.
    fn enqueue(
        &self,
        item: &NewOutboxItem,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Claims up to `limit` due items (pending, or sending with an expired lease) under a
    /// new claim of `claimer`, skipping targets suspended at `now`, and only the head of each
    /// target's queue: an item whose target has an earlier item still pending or sending
    /// waits for it, so each target receives its items in queue order. Targets are taken in
    /// order from the first after `after` round to `after` itself (a drain passes the last
    /// target it claimed: every target gets its turn); returned in that order.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
        after: &str,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;
    /// Extends the lease of an item still held under `claim` and not yet expired at `now`;
    /// false when the claim was lost (expired, or taken over): the item must not be sent.
    fn renew_claim(
        &self,
        id: i64,
        claim: &Claim,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Records the item sent, if still held under `claim`; whether it was.
    fn mark_sent(
        &self,
        id: i64,
        claim: &Claim,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Gives a claimed item back unsent, its attempt not counted, due again at `at`, if
    /// still held under `claim`.
    fn release(
        &self,
        id: i64,
        claim: &Claim,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Records a failed attempt at `at`: retried at `retry_at`, or dead when `None`; only if
    /// still held under `claim`.
    fn mark_failed(
        &self,
        id: i64,
        claim: &Claim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Notes a delivery outcome for a target: success resets it, a failure counts. Returns
    /// the new health.
    fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<EndpointHealth>> + Send;
    /// Suspends a target: its items are not claimed before `until`.
    fn suspend_endpoint(
        &self,
        target: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn endpoints(&self) -> impl Future<Output = StoreResult<Vec<EndpointHealth>>> + Send;
    fn outbox_counts(&self) -> impl Future<Output = StoreResult<OutboxCounts>> + Send;
    /// A page of the outbox, newest first.
    fn outbox_items(
        &self,
        page: &OutboxPage,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;
    /// A page of the delivery history, newest first (`status` filters `sent` / `dead`).
    fn deliveries(
        &self,
        page: &OutboxPage,
    ) -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
    /// Moves up to `batch` sent or dead items finished before `before` to the delivery
    /// history (their payload dropped), in one transaction; how many. Called until it
    /// returns less than `batch`.
    fn purge_outbox(
        &self,
        before: DateTime<Utc>,
        batch: u32,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Deletes up to `batch` rows of the delivery history finished before `before`.
    fn purge_deliveries(
        &self,
        before: DateTime<Utc>,
        batch: u32,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Queues the dead items `filter` matches again (attempts reset, due at `at`) and records
    /// who did it in `outbox_audit`, in one transaction; returns how many.
    fn requeue_dead(
        &self,
        filter: &RequeueFilter,
        actor: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// The job run history and the claims on scheduled slots, as the scheduler uses them.
pub trait RunStore: Send + Sync {
    /// Records a run's end (or a manual run whole). A slot claimed by another owner since
    /// (its run was abandoned and taken over) is left to that owner: false.
    fn record_run(&self, run: &JobRun) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Claims a scheduled slot for `owner`: true when this caller is the one to run it (the
    /// row `UNIQUE (job, scheduled_for)` makes a slot run once, across replicas too). A slot
    /// of `rerunnable` jobs whose run was abandoned can be claimed again.
    fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
        owner: &str,
        rerunnable: &[&str],
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Says the run of `owner` is still going; false when the claim is no longer its own.
    fn heartbeat(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        owner: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Runs still `running`.
    fn running_runs(&self) -> impl Future<Output = StoreResult<Vec<RunningRun>>> + Send;
    /// Closes the run of (`job`, `slot`) as `abandoned` if it is still `running` under
    /// `owner`'s claim; whether it was.
    fn abandon_run(
        &self,
        run: &RunningRun,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The latest slot of `job` in the history.
    fn last_slot(
        &self,
        job: &str,
    ) -> impl Future<Output = StoreResult<Option<DateTime<Utc>>>> + Send;
    /// The latest run of each job.
    fn last_runs(&self) -> impl Future<Output = StoreResult<Vec<JobRun>>> + Send;
    /// The most recent runs, newest first: `limit` of those with an id below `before`.
    fn runs(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<JobRun>>> + Send;
    /// Deletes the finished runs that started before `before`, except the latest slot of
    /// each job (catch-up and `status` read it); how many.
    fn purge_runs(&self, before: DateTime<Utc>) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// A whole store: every stage's trait, on one backend. The backend is chosen once, at
/// start-up ([`Backend::of`]), and everything above is generic over it.
pub trait Store:
    SyncStore
    + FindingStore
    + EvaluationStore
    + DigestStore
    + SilenceStore
    + AckStore
    + OutboxStore
    + RunStore
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Opens the store at `url` (SQLite: creating the file if missing); [`Store::migrate`]
    /// then brings its schema up to date.
    fn open(url: &str) -> impl Future<Output = StoreResult<Self>> + Send
    where
        Self: Sized;
    /// Takes the settings that tune this backend (before its first query).
    fn tune(&mut self, _settings: &Settings) {}
    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Every stage's store trait, for code that works on a concrete backend (the CLI, tests):
/// `use cierre::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AckStore, DigestStore, EvaluationStore, FindingStore, IdPage, OutboxStore, RunStore,
        SilenceStore, Store,
    };
    pub use crate::sync::SyncStore;
}

/// The backends, by the scheme of `store.url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is a SQLite file.
    pub fn of(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Reports a commit to the sync. A sync that stopped listening is going away; the pages are
/// stored all the same.
fn report_commit(committed: &tokio::sync::mpsc::UnboundedSender<Committed>, done: Committed) {
    if committed.send(done).is_err() {
        tracing::debug!("committed pages were not reported");
    }
}
