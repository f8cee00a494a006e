//! Notify, spool: the (recipient, finding) pairs of a digest run, sorted by recipient then
//! urgency without holding them all in memory — sorted runs of up to [`RUN`] entries are
//! spilled to temporary files and merged — so that digests are built one recipient at a
//! time whatever the number of findings.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

/// Entries sorted in memory before a run is spilled: 8 MiB of them (a million findings make
/// four runs; merging them costs next to nothing).
pub const RUN: usize = 1 << 18;

/// One finding in one recipient's digest, in the order the digest lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub recipient: u32,
    /// The level's rank, most urgent first.
    pub urgency: u16,
    pub days_left: i32,
    pub kind: u8,
    pub finding: i64,
    /// A hash of the contract id, to count contracts.
    pub contract: u64,
}

const SIZE: usize = 4 + 2 + 4 + 1 + 8 + 8;

impl Entry {
    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut b = [0u8; SIZE];
        b[0..4].copy_from_slice(&self.recipient.to_le_bytes());
        b[4..6].copy_from_slice(&self.urgency.to_le_bytes());
        b[6..10].copy_from_slice(&self.days_left.to_le_bytes());
        b[10] = self.kind;
        b[11..19].copy_from_slice(&self.finding.to_le_bytes());
        b[19..27].copy_from_slice(&self.contract.to_le_bytes());
        w.write_all(&b)
    }

    fn read(r: &mut impl Read) -> io::Result<Option<Entry>> {
        let mut b = [0u8; SIZE];
        match r.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let le4 = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let le8 = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            a
        };
        Ok(Some(Entry {
            recipient: u32::from_le_bytes(le4(0)),
            urgency: u16::from_le_bytes([b[4], b[5]]),
            days_left: i32::from_le_bytes(le4(6)),
            kind: b[10],
            finding: i64::from_le_bytes(le8(11)),
            contract: u64::from_le_bytes(le8(19)),
        }))
    }
}

/// Entries pushed in any order, read back sorted.
pub struct Spool {
    buffer: Vec<Entry>,
    runs: Vec<File>,
    run: usize,
}

impl Default for Spool {
    fn default() -> Self {
        Spool::with_run(RUN)
    }
}

impl Spool {
    /// A spool spilling every `run` entries (tests use small runs).
    pub fn with_run(run: usize) -> Spool {
        Spool { buffer: Vec::new(), runs: Vec::new(), run: run.max(1) }
    }

    pub fn push(&mut self, e: Entry) -> io::Result<()> {
        self.buffer.push(e);
        if self.buffer.len() >= self.run { self.spill() } else { Ok(()) }
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let mut w = BufWriter::new(tempfile::tempfile()?);
        for e in &self.buffer {
            e.write(&mut w)?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        io::Seek::rewind(&mut file)?;
        self.runs.push(file);
        self.buffer.clear();
        Ok(())
    }

    /// Every entry pushed, in order.
    pub fn sorted(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return Ok(Sorted::Memory(self.buffer.into_iter()));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<BufReader<File>> =
            self.runs.into_iter().map(|f| BufReader::with_capacity(64 * 1024, f)).collect();
        let mut heads = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(e) = Entry::read(r)? {
                heads.push(Reverse((e, i)));
            }
        }
        Ok(Sorted::Merge { readers, heads, failed: None })
    }
}

/// The entries of a [`Spool`], in order.
pub enum Sorted {
    Memory(std::vec::IntoIter<Entry>),
    Merge {
        readers: Vec<BufReader<File>>,
        heads: BinaryHeap<Reverse<(Entry, usize)>>,
        /// A run that could not be read further: reported after the entry taken before it.
        failed: Option<io::Error>,
    },
}

impl Iterator for Sorted {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        match self {
            Sorted::Memory(it) => it.next().map(Ok),
            Sorted::Merge { readers, heads, failed } => {
                if let Some(err) = failed.take() {
                    heads.clear();
                    return Some(Err(err));
                }
                let Reverse((e, i)) = heads.pop()?;
                match Entry::read(&mut readers[i]) {
                    Ok(Some(next)) => heads.push(Reverse((next, i))),
                    Ok(None) => {}
                    Err(err) => *failed = Some(err),
                }
                Some(Ok(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(recipient: u32, urgency: u16, days_left: i32, finding: i64) -> Entry {
        Entry { recipient, urgency, days_left, kind: (finding % 4) as u8, finding, contract: !0 }
    }

    proptest! {
        #[test]
        fn entries_come_back_sorted_however_they_were_spilled(
            raw in proptest::collection::vec((0u32..5, 0u16..3, -50i32..50, any::<i64>()), 0..300),
            run in 1usize..40,
        ) {
            let entries: Vec<Entry> =
                raw.iter().map(|&(r, u, d, f)| entry(r, u, d, f)).collect();
            let mut spool = Spool::with_run(run);
            for e in &entries {
                spool.push(*e).unwrap();
            }
            let back: Vec<Entry> = spool.sorted().unwrap().map(Result::unwrap).collect();
            let mut expected = entries.clone();
            expected.sort();
            prop_assert_eq!(back, expected);
        }
    }
}
