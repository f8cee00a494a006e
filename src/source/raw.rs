//! Source → store: the raw record as received, kept compressed. Contract rows repeat the same
//! 80-odd keys, so zstd with a dictionary trained on real rows (`scripts/train-dictionary`)
//! shrinks them several times over, which keeps syncs fast and a national-scale store small.
//!
//! Compression runs on the parse workers, beside parsing, not on the writer.

use std::cell::RefCell;
use std::io::Read;

use crate::domain::Dataset;

/// Dictionary 1 for contract records. Frames name their dictionary id: a dictionary that
/// has compressed stored records stays here for good; a better one is added as id 2.
static CONTRACTS_1: &[u8] = include_bytes!("dict/contracts-1.zdict");

/// Level 1: with the dictionary, higher levels save little space for much more time.
const LEVEL: i32 = 1;

thread_local! {
    static CONTRACTS: RefCell<zstd::bulk::Compressor<'static>> = RefCell::new(
        zstd::bulk::Compressor::with_dictionary(LEVEL, CONTRACTS_1).expect("the embedded dictionary loads"),
    );
    static PLAIN: RefCell<zstd::bulk::Compressor<'static>> =
        RefCell::new(zstd::bulk::Compressor::new(LEVEL).expect("a zstd context"));
}

/// Compresses one record's text into a zstd frame.
pub fn compress(dataset: Dataset, text: &str) -> Vec<u8> {
    let compressor = match dataset {
        Dataset::Contracts => &CONTRACTS,
        // Document and guarantee rows are short and varied: no dictionary (yet).
        Dataset::Documents | Dataset::Guarantees => &PLAIN,
    };
    // Into a reused buffer, then copied at its exact size: a frame is ~600 bytes, the
    // worst-case buffer zstd asks for is the record's size.
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        buf.reserve(zstd::zstd_safe::compress_bound(text.len()));
        compressor.with(|c| {
            c.borrow_mut()
                .compress_to_buffer(text.as_bytes(), &mut *buf)
                .expect("zstd compresses in memory")
        });
        buf.to_vec()
    })
}

/// The record's text back from a stored frame.
pub fn decompress(frame: &[u8]) -> Result<String, String> {
    let dict: &[u8] = match zstd::zstd_safe::get_dict_id_from_frame(frame).map(|id| id.get()) {
        None => &[],
        Some(1) => CONTRACTS_1,
        Some(id) => return Err(format!("the record was compressed with unknown dictionary {id}")),
    };
    let mut decoder = zstd::stream::read::Decoder::with_dictionary(frame, dict)
        .map_err(|e| format!("not a zstd frame: {e}"))?;
    let mut text = String::new();
    decoder.read_to_string(&mut text).map_err(|e| format!("cannot decompress the record: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_contract_row_round_trips_in_a_fraction_of_its_size() {
        let row = include_str!("../../examples/secop/contracts.jsonl").lines().nth(17).unwrap();
        let frame = compress(Dataset::Contracts, row);
        assert!(frame.len() * 4 < row.len(), "{} of {} bytes", frame.len(), row.len());
        assert_eq!(decompress(&frame).unwrap(), row);
    }

    #[test]
    fn rows_without_a_dictionary_round_trip_too() {
        let row = r#"{"id_documento":"77","nombre_archivo":"ACTA DE INICIO.pdf"}"#;
        let frame = compress(Dataset::Documents, row);
        assert_eq!(decompress(&frame).unwrap(), row);
        assert!(decompress(b"not zstd").is_err());
    }
}
