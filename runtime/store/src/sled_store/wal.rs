//! The write-ahead log: the store's durability point since layout version 4.
//!
//! **Why it exists.** An acknowledgement used to wait for `sled::Db::flush` plus an `fdatasync`
//! of sled's file. sled 0.34 writes its log buffers on a pool of seven threads and wakes all
//! seven for every buffer (`Condvar::notify_all`), so each group commit cost seven thread
//! wake-ups besides the write itself: 12–19 µs of CPU per turn under load (BENCHMARKS.md,
//! session 15). Now every append's request is also encoded here, and a group commit is one
//! `write` plus one `fdatasync` of this file on the flusher thread. sled's own writes happen
//! when its buffers fill and at checkpoints.
//!
//! **Invariants** (the recovery argument; `group_commit.rs` and `write.rs` keep them):
//! - A record is pushed only *after* its append has been applied to sled, and under the
//!   session's stripe lock. So per session, the log holds appends in the order sled applied
//!   them.
//! - A waiter is released only after the generation holding its record has been written and
//!   `fdatasync`ed (or covered by a checkpoint). So every acknowledged append is in this file,
//!   in sled's durable files, or both.
//! - **Checkpoint:** take the pending records, `sled::Db::flush`, `fdatasync` sled's file,
//!   then empty this log (a new epoch in its header, synced). Every record in the file, and
//!   every one taken, was applied to sled before the flush started, so the flush covers them
//!   all and they can go.
//! - A crash between the sled flush and the new epoch leaves records that sled already holds.
//!   Replaying them gives `Duplicate` or `Conflict`, and is skipped.
//! - **Replay at open:** each record goes through the normal check-then-write. A record sled
//!   already holds is refused by its idempotency key or its expected head. One it lacks is
//!   applied. Per session the records are in application order, so each one finds the head
//!   it expects.
//! - **Deletions checkpoint** before they are acknowledged. Otherwise an older record could
//!   re-create a deleted session on replay (a session's first append expects head 0, which is
//!   what a deleted session has).
//! - **Torn tail:** each generation's frames are written as one batch with the log's epoch,
//!   a length and a CRC-32 (each frame has its own CRC too). Replay stops at the first batch
//!   that is incomplete, fails its checksum or belongs to an older epoch (the file is
//!   recycled in place; see [`Wal`]). Only the last write can be torn: each generation is
//!   written after the previous one's `fdatasync` returned. The records of a torn write were
//!   never acknowledged.
//! - **A failed write or `fdatasync`** leaves the file's tail unknown. The generation's waiters
//!   get the error. The next generation is a checkpoint instead of a write, so nothing is ever
//!   written after an unknown tail; as long as checkpoints fail too, every generation fails
//!   (we fail closed), and the first one that succeeds makes everything applied durable.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::AppendRequest;
use crate::varint;

/// The log's file name inside the data directory.
pub(crate) const WAL_FILE: &str = "wal";

/// The log reaches this size, then the flusher checkpoints: bounds replay at start-up to a
/// few seconds at most (about 30,000 typical turns).
pub(crate) const CHECKPOINT_BYTES: u64 = 32 << 20;

/// Kind byte of an append record (the only kind so far; others would be refused on replay).
const KIND_APPEND: u8 = 1;
/// Frame header: payload length and CRC-32, both little-endian `u32`.
const HEADER: usize = 8;
/// A payload longer than this is not a frame of ours (damage): appends are bounded far below.
const MAX_PAYLOAD: usize = 1 << 30;

/// The file starts with this, then the epoch (`u64` LE).
const FILE_MAGIC: &[u8; 8] = b"kefuwal1";
const FILE_HEADER: usize = 16;
/// Each write (one generation's frames) starts with this, the epoch, the length of its frames
/// and their CRC-32: `magic u32, epoch u64, len u32, crc u32`, little-endian.
const BATCH_MAGIC: u32 = 0x4B57_4231;
const BATCH_HEADER: usize = 20;

/// The open log file.
///
/// **Recycled in place.** A checkpoint does not truncate the file: it bumps the epoch in the
/// file header and starts writing at the front again, over the old batches. So a log write
/// overwrites blocks the file already has, and its `fdatasync` flushes data only; appending
/// to a growing file made every `fdatasync` commit the file system's journal as well (the
/// size and the new blocks), which cost as much CPU as the log saved. Replay reads batches
/// while their epoch is the header's and their checksum holds: the first batch of an older
/// epoch, or a torn one, ends the log.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    epoch: u64,
    /// Where the next batch goes.
    end: u64,
    /// Reused for each batch: header and frames go out in one write.
    buf: Vec<u8>,
}

/// What [`Wal::open`] found in the log.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The frames of the current epoch's complete batches, in order.
    pub(crate) frames: Vec<u8>,
    /// Why reading stopped before the end of the file, when a batch was torn or damaged
    /// (an older epoch's batch, or zeros, simply end the log).
    pub(crate) torn: Option<&'static str>,
}

impl Wal {
    /// Opens the log in `dir`, creating it (durably) when there is none, and returns it with
    /// what it holds, for replay. A file that is not a log of ours is an error.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Wal, Recovered)> {
        let path = dir.join(WAL_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)?;
        let mut wal = Wal {
            file,
            path,
            epoch: 0,
            end: FILE_HEADER as u64,
            buf: Vec::new(),
        };
        if contents.len() < FILE_HEADER {
            // New (or a crash before its header was first synced: nothing was logged yet).
            wal.epoch = 1;
            wal.write_header()?;
            File::open(dir)?.sync_all()?;
            return Ok((wal, Recovered::default()));
        }
        if &contents[..8] != FILE_MAGIC {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a kefu write-ahead log (bad magic)",
            ));
        }
        wal.epoch = u64::from_le_bytes(contents[8..16].try_into().unwrap_or_default());
        let recovered = read_batches(&contents[FILE_HEADER..], wal.epoch);
        Ok((wal, recovered))
    }

    fn write_header(&mut self) -> std::io::Result<()> {
        let mut header = [0u8; FILE_HEADER];
        header[..8].copy_from_slice(FILE_MAGIC);
        header[8..].copy_from_slice(&self.epoch.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.file.sync_data()?;
        self.end = FILE_HEADER as u64;
        Ok(())
    }

    /// Writes `frames` (whole frames) as one batch after the last, and syncs it when `fsync`.
    pub(crate) fn write_durably(&mut self, frames: &[u8], fsync: bool) -> std::io::Result<()> {
        if !frames.is_empty() {
            let len = u32::try_from(frames.len()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "log batch over 4 GiB")
            })?;
            self.buf.clear();
            self.buf.extend_from_slice(&BATCH_MAGIC.to_le_bytes());
            self.buf.extend_from_slice(&self.epoch.to_le_bytes());
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf
                .extend_from_slice(&crc32fast::hash(frames).to_le_bytes());
            self.buf.extend_from_slice(frames);
            self.file.write_all_at(&self.buf, self.end)?;
            self.end += self.buf.len() as u64;
        }
        if fsync { self.sync() } else { Ok(()) }
    }

    /// `fdatasync` of the log.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Empties the log, durably: a new epoch in the header, writing from the front again.
    pub(crate) fn reset(&mut self) -> std::io::Result<()> {
        self.epoch += 1;
        self.write_header()
    }

    /// Bytes of the current epoch's batches.
    pub(crate) fn len(&self) -> u64 {
        self.end - FILE_HEADER as u64
    }

    /// Where the log lives (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The frames of the batches of `epoch` at the front of `bytes`.
fn read_batches(bytes: &[u8], epoch: u64) -> Recovered {
    let mut recovered = Recovered::default();
    let mut rest = bytes;
    while rest.len() >= BATCH_HEADER {
        let word = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().unwrap_or_default());
        let batch_epoch = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
        if word(0) != BATCH_MAGIC || batch_epoch != epoch {
            // Zeros or an older epoch's batch: the end of this epoch's log.
            return recovered;
        }
        let len = word(12) as usize;
        let Some(frames) = rest.get(BATCH_HEADER..BATCH_HEADER + len) else {
            recovered.torn = Some("incomplete batch");
            return recovered;
        };
        if crc32fast::hash(frames) != word(16) {
            recovered.torn = Some("batch checksum mismatch");
            return recovered;
        }
        recovered.frames.extend_from_slice(frames);
        rest = &rest[BATCH_HEADER + len..];
    }
    recovered
}

/// Appends one frame for `req` on `session` to `out`.
pub(crate) fn encode_append(out: &mut Vec<u8>, session: &str, req: &AppendRequest) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(KIND_APPEND);
    put_bytes(out, session.as_bytes());
    varint::put(out, req.expected_seq);
    let flags = u8::from(req.idempotency_key.is_some()) | u8::from(req.snapshot.is_some()) << 1;
    out.push(flags);
    if let Some(key) = &req.idempotency_key {
        put_bytes(out, key.as_bytes());
    }
    put_bytes(out, req.user.as_bytes());
    varint::put(out, req.events.len() as u64);
    for event in &req.events {
        put_bytes(out, event);
    }
    if let Some(snapshot) = &req.snapshot {
        put_bytes(out, snapshot);
    }
    let payload = &out[start + HEADER..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// What a log's contents decode to.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// The appends, in log order.
    pub(crate) records: Vec<(String, AppendRequest)>,
    /// Bytes after the last good frame (a torn tail), dropped.
    pub(crate) dropped_bytes: usize,
    /// Why decoding stopped early, when it did.
    pub(crate) stopped: Option<&'static str>,
}

/// Decodes frames from the front of `bytes` until the end or the first bad frame.
pub(crate) fn decode_all(bytes: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode_frame(rest) {
            Ok((session, req, used)) => {
                decoded.records.push((session, req));
                rest = &rest[used..];
            }
            Err(why) => {
                decoded.dropped_bytes = rest.len();
                decoded.stopped = Some(why);
                break;
            }
        }
    }
    decoded
}

/// One frame: the session, the request and the bytes the frame took.
fn decode_frame(bytes: &[u8]) -> Result<(String, AppendRequest, usize), &'static str> {
    let header = bytes.get(..HEADER).ok_or("incomplete frame header")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_PAYLOAD {
        return Err("frame length out of range");
    }
    let payload = bytes
        .get(HEADER..HEADER + len)
        .ok_or("incomplete frame payload")?;
    if crc32fast::hash(payload) != crc {
        return Err("frame checksum mismatch");
    }
    let (session, req) = decode_payload(payload).ok_or("frame payload malformed")?;
    Ok((session, req, HEADER + len))
}

fn decode_payload(payload: &[u8]) -> Option<(String, AppendRequest)> {
    let mut rest = payload;
    let (&kind, tail) = rest.split_first()?;
    rest = tail;
    if kind != KIND_APPEND {
        return None;
    }
    let session = take_string(&mut rest)?;
    let expected_seq = varint::take(&mut rest)?;
    let (&flags, tail) = rest.split_first()?;
    rest = tail;
    if flags & !0b11 != 0 {
        return None;
    }
    let idempotency_key = if flags & 1 != 0 {
        Some(take_string(&mut rest)?)
    } else {
        None
    };
    let user = take_string(&mut rest)?;
    let count = usize::try_from(varint::take(&mut rest)?).ok()?;
    // Each event takes at least one byte (its length), so a count beyond that is damage and
    // must not drive a huge allocation.
    if count > rest.len() {
        return None;
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        events.push(take_bytes(&mut rest)?.to_vec());
    }
    let snapshot = if flags & 2 != 0 {
        Some(take_bytes(&mut rest)?.to_vec())
    } else {
        None
    };
    if !rest.is_empty() {
        return None;
    }
    Some((
        session,
        AppendRequest {
            expected_seq,
            idempotency_key,
            user,
            events,
            snapshot,
        },
    ))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint::take(rest)?).ok()?;
    let bytes = rest.get(..len)?;
    *rest = &rest[len..];
    Some(bytes)
}

fn take_string(rest: &mut &[u8]) -> Option<String> {
    String::from_utf8(take_bytes(rest)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(i: u64) -> (String, AppendRequest) {
        (
            format!("s-{i}"),
            AppendRequest {
                expected_seq: i * 3,
                idempotency_key: i.is_multiple_of(2).then(|| format!("m-{i}")),
                user: format!("u-{}", i % 3),
                events: (0..i % 4)
                    .map(|e| vec![e as u8; (e * 7) as usize])
                    .collect(),
                snapshot: (!i.is_multiple_of(3)).then(|| format!("{{\"turns\":{i}}}").into_bytes()),
            },
        )
    }

    fn encode(records: &[(String, AppendRequest)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (session, req) in records {
            encode_append(&mut out, session, req);
        }
        out
    }

    #[test]
    fn frames_round_trip_in_order() {
        let records: Vec<_> = (0..20).map(sample).collect();
        let decoded = decode_all(&encode(&records));
        assert_eq!(decoded.records, records);
        assert_eq!(decoded.dropped_bytes, 0);
        assert!(decoded.stopped.is_none());
    }

    #[test]
    fn a_torn_or_damaged_tail_is_dropped_and_what_precedes_it_kept() {
        let records: Vec<_> = (0..5).map(sample).collect();
        let whole = encode(&records);
        let first_four = encode(&records[..4]).len();
        // Every cut inside the last frame keeps exactly the first four.
        for cut in first_four + 1..whole.len() {
            let decoded = decode_all(&whole[..cut]);
            assert_eq!(decoded.records, records[..4], "cut at {cut}");
            assert_eq!(decoded.dropped_bytes, cut - first_four);
        }
        // A flipped bit in the last frame's payload fails its checksum.
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        let decoded = decode_all(&flipped);
        assert_eq!(decoded.records, records[..4]);
        assert_eq!(decoded.stopped, Some("frame checksum mismatch"));
        // Zeros where a page never reached the disk: a zero-length frame with CRC 0 does not
        // match the CRC of an empty payload, so it is not taken for a record.
        let mut zeros = encode(&records[..2]);
        zeros.extend_from_slice(&[0; 64]);
        let decoded = decode_all(&zeros);
        assert_eq!(decoded.records, records[..2]);
        assert_eq!(decoded.dropped_bytes, 64);
    }

    #[test]
    fn the_log_file_writes_batches_recycles_in_place_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, recovered) = Wal::open(dir.path()).unwrap();
        assert!(recovered.frames.is_empty());
        let records: Vec<_> = (0..6).map(sample).collect();
        let first = encode(&records[..2]);
        let second = encode(&records[2..3]);
        wal.write_durably(&first, true).unwrap();
        wal.write_durably(&second, true).unwrap();
        drop(wal);
        let (mut wal, recovered) = Wal::open(dir.path()).unwrap();
        assert_eq!(decode_all(&recovered.frames).records, records[..3]);
        assert!(recovered.torn.is_none());
        let size = std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len();

        // A reset starts a new epoch: the old batches are still in the file but are not read.
        wal.reset().unwrap();
        assert_eq!(wal.len(), 0);
        drop(wal);
        let (mut wal, recovered) = Wal::open(dir.path()).unwrap();
        assert!(recovered.frames.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
            size
        );

        // Writing again goes over the old batches, from the front; the file does not grow.
        let third = encode(&records[3..4]);
        wal.write_durably(&third, false).unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(dir.path()).unwrap();
        assert_eq!(decode_all(&recovered.frames).records, records[3..4]);
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
            size
        );
    }

    #[test]
    fn a_torn_batch_ends_the_log_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let records: Vec<_> = (0..3).map(sample).collect();
        wal.write_durably(&encode(&records[..2]), true).unwrap();
        wal.write_durably(&encode(&records[2..]), true).unwrap();
        drop(wal);
        let path = dir.path().join(WAL_FILE);
        let whole = std::fs::read(&path).unwrap();
        // Cut into the second batch: the first survives, the cut is reported.
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let (_, recovered) = Wal::open(dir.path()).unwrap();
        assert_eq!(decode_all(&recovered.frames).records, records[..2]);
        assert_eq!(recovered.torn, Some("incomplete batch"));
        // A flipped bit in the second batch fails its checksum.
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let (_, recovered) = Wal::open(dir.path()).unwrap();
        assert_eq!(decode_all(&recovered.frames).records, records[..2]);
        assert_eq!(recovered.torn, Some("batch checksum mismatch"));

        std::fs::write(&path, b"something else entirely").unwrap();
        let err = Wal::open(dir.path()).err().expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let decoded = decode_all(&bytes);
            prop_assert!(decoded.dropped_bytes <= bytes.len());
        }

        #[test]
        fn any_request_round_trips(
            session in "\\PC{0,20}",
            expected_seq in any::<u64>(),
            key in proptest::option::of("\\PC{0,40}"),
            user in "\\PC{0,20}",
            events in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5),
            snapshot in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        ) {
            let req = AppendRequest { expected_seq, idempotency_key: key, user, events, snapshot };
            let mut out = Vec::new();
            encode_append(&mut out, &session, &req);
            let decoded = decode_all(&out);
            prop_assert_eq!(decoded.records, vec![(session, req)]);
        }
    }
}
