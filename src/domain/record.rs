//! Records as the sync stores them: which dataset they come from, and a parsed record with
//! its raw text and content hash.

/// The three datasets a sync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    Contracts,
    Documents,
    Guarantees,
}

impl Dataset {
    pub const ALL: [Dataset; 3] = [Dataset::Contracts, Dataset::Documents, Dataset::Guarantees];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Contracts => "contracts",
            Dataset::Documents => "documents",
            Dataset::Guarantees => "guarantees",
        }
    }
}

/// A record the sync can store: the domain value, the raw record compressed (see
/// `source::raw`), and the hash.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub value: T,
    /// The record's text as received, as a zstd frame.
    pub raw: Vec<u8>,
    /// Hex content hash over the record's fields (see `source::record`), without Socrata's
    /// system fields (`:id`, `:updated_at`…), which change on every nightly rebuild of the
    /// dataset.
    pub hash: String,
}
