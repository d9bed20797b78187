//! Key and value encodings of the sled back-end's single tree.
//!
//! Every record lives in one sled tree, told apart by a one-byte kind prefix. Session keys and
//! user ids are arbitrary UTF-8 (they may contain `\0` or be prefixes of each other), so every
//! such string inside a key is **length-prefixed** (`u64` big-endian length, then the bytes).
//! That makes the encoding prefix-free: the prefix of session `"a"` can never be a prefix of the
//! keys of session `"a\0b"`, because the two start with different lengths.
//!
//! | kind | key                                          | value                                  |
//! |------|----------------------------------------------|----------------------------------------|
//! | `F`  | `F`                                          | format version (`u32` BE)              |
//! | `M`  | `M` len(session) session                     | [`Meta`]: head, snapshot seq, user, the recent idempotency keys, snapshot |
//! | `E`  | `E` len(session) session first-seq(`u64` BE) | [`encode_events`]: the events of one append, seq `first-seq..` |
//! | `U`  | `U` len(user) user session                   | empty                                  |
//!
//! Big-endian sequence numbers make sled's lexicographic order the numeric order, so an event
//! range is one ordered scan. One `E` record holds all events of one append (a turn's user and
//! bot events), so a turn costs two inserts (events, meta) however many events it has. The
//! session in `U` is the *last* part of its key, so it needs no length of its own.
//!
//! Values use LEB128 varints for lengths and sequence numbers (small numbers, one or two bytes),
//! since the meta record is rewritten on every turn.

use crate::{LoadedSession, Result, StoreError, varint};

/// Kind byte of the in-tree format marker.
pub(crate) const FORMAT_KEY: &[u8] = b"F";
const META: u8 = b'M';
const EVENT: u8 = b'E';
const USER: u8 = b'U';
/// Version byte leading every encoded [`Meta`], so a later layout can be told apart.
/// Version 3: varints, and the bounded list of recent idempotency keys ([`Meta::recent`])
/// instead of one key plus separate `I` records. Version 4: each remembered key as its 8-byte
/// [`idem_digest`] instead of the key itself. Version 3 records are still read (their keys are
/// digested on decode) and are rewritten as version 4 by the session's next append, so no
/// migration step is needed.
const META_VERSION: u8 = 4;
/// The previous layout, still decoded.
const META_VERSION_3: u8 = 3;

/// The digest under which an idempotency key is remembered: SipHash-1-3 with fixed keys, so it
/// is the same in every process and release.
///
/// Why a digest: the meta record is rewritten on every turn, and sled's cost per insert grows
/// with the record (its pages are copied and written out again on consolidation). Channel
/// message ids are typically 36-character UUIDs; sixteen of them were two thirds of a typical
/// meta record. Keeping digests instead cut the server's CPU per turn by about 3% in the load
/// test (and an experiment without any keys by 5.5%; BENCHMARKS.md, session 14).
///
/// Why 64 bits are enough: a key is compared with at most the window's 16 digests of its own
/// session, so an unrelated message is taken for a retry with probability about 16 / 2^64
/// (10^-18) per append. The fixed keys let a client craft colliding ids on purpose, but only
/// within its own session, where it could equally resend an old id.
pub(crate) fn idem_digest(key: &str) -> u64 {
    use std::hash::Hasher as _;
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x6b65_6675_2d69_6465, 0x6d70_6f74_656e_6379);
    h.write(key.as_bytes());
    h.finish()
}

fn with_str(kind: u8, s: &str, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + s.len() + extra);
    key.push(kind);
    key.extend_from_slice(&(s.len() as u64).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
    key
}

/// Key of a session's meta record.
pub(crate) fn meta_key(session: &str) -> Vec<u8> {
    with_str(META, session, 0)
}

/// Prefix of all meta records (for counting sessions).
pub(crate) fn meta_all_prefix() -> [u8; 1] {
    [META]
}

/// Prefix of all event keys of a session.
pub(crate) fn event_prefix(session: &str) -> Vec<u8> {
    with_str(EVENT, session, 8)
}

/// Key of one event.
pub(crate) fn event_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Reads the sequence number out of an event key that starts with `prefix`.
pub(crate) fn event_seq(prefix: &[u8], key: &[u8], session: &str) -> Result<u64> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| bad(session, "event key has no 8-byte sequence number"))
}

/// Prefix of the user index entries of one user.
pub(crate) fn user_prefix(user: &str) -> Vec<u8> {
    with_str(USER, user, 0)
}

/// Key of one user index entry.
pub(crate) fn user_key(user: &str, session: &str) -> Vec<u8> {
    let mut key = with_str(USER, user, session.len());
    key.extend_from_slice(session.as_bytes());
    key
}

/// Reads the session key out of a user index key that starts with `prefix`.
pub(crate) fn user_key_session(prefix: &[u8], key: &[u8], user: &str) -> Result<String> {
    key.strip_prefix(prefix)
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .map(str::to_owned)
        .ok_or_else(|| StoreError::BadRecord {
            session: format!("(index of user {user})"),
            detail: "user index key does not end in a UTF-8 session key".into(),
        })
}

/// One remembered idempotency key: its digest and the sequence range of the append that used
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecentIdem {
    /// [`idem_digest`] of the idempotency key.
    pub(crate) digest: u64,
    /// First sequence number of that append.
    pub(crate) first_seq: u64,
    /// Last sequence number of that append (`first_seq - 1` when it wrote no events).
    pub(crate) last_seq: u64,
}

/// A session's meta record: everything `load` needs in one read, and the commit point of
/// every append (it is the last record an append writes).
///
/// The snapshot lives inside the meta record (not in a key of its own) because every turn
/// rewrites both anyway, and activation then costs a single point read. The recent
/// idempotency keys live here too, for the same reason: the duplicate check needs no second
/// read, a key is committed exactly when its append is, and bounding them is just dropping
/// the oldest entry of a list (nothing to delete on disk, no storage growth per turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Head sequence number.
    pub(crate) seq: u64,
    /// Sequence number the snapshot was taken at.
    pub(crate) snapshot_seq: u64,
    /// The user recorded on the first write.
    pub(crate) user: String,
    /// Idempotency keys of the session's latest keyed appends, oldest first, at most the
    /// store's idempotency window.
    pub(crate) recent: Vec<RecentIdem>,
    /// The latest snapshot.
    pub(crate) snapshot: Option<Vec<u8>>,
}

impl Meta {
    /// Encodes as: version, seq, snapshot_seq, user length, user, number of recent keys, each
    /// as [first seq, event count, digest (8 bytes, little-endian)], has-snapshot flag,
    /// snapshot. Every other number is a varint.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let snap_len = self.snapshot.as_ref().map_or(0, Vec::len);
        let recent_len: usize = self.recent.len() * 20;
        let mut out = Vec::with_capacity(24 + self.user.len() + recent_len + snap_len);
        out.push(META_VERSION);
        varint::put(&mut out, self.seq);
        varint::put(&mut out, self.snapshot_seq);
        put_bytes(&mut out, self.user.as_bytes());
        varint::put(&mut out, self.recent.len() as u64);
        for recent in &self.recent {
            varint::put(&mut out, recent.first_seq);
            // Stored as a count so that an empty append (`last = first - 1`) needs no sign.
            varint::put(
                &mut out,
                recent
                    .last_seq
                    .saturating_add(1)
                    .saturating_sub(recent.first_seq),
            );
            out.extend_from_slice(&recent.digest.to_le_bytes());
        }
        match &self.snapshot {
            Some(snapshot) => {
                out.push(1);
                out.extend_from_slice(snapshot);
            }
            None => out.push(0),
        }
        out
    }

    /// Decodes a meta record; any malformation is [`StoreError::BadRecord`], never a panic.
    pub(crate) fn decode(bytes: &[u8], session: &str) -> Result<Meta> {
        let mut rest = bytes;
        let version = take(&mut rest, 1, session, "version")?[0];
        if version != META_VERSION && version != META_VERSION_3 {
            return Err(bad(session, "meta record has an unknown version"));
        }
        let seq = take_varint(&mut rest, session, "head sequence")?;
        let snapshot_seq = take_varint(&mut rest, session, "snapshot sequence")?;
        let user = take_str(&mut rest, session, "user")?;
        let count = take_varint(&mut rest, session, "idempotency key count")?;
        // Each entry takes at least 3 bytes: a corrupt count cannot make us allocate much.
        let mut recent =
            Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(rest.len() / 3));
        for _ in 0..count {
            let first_seq = take_varint(&mut rest, session, "idempotency first sequence")?;
            let events = take_varint(&mut rest, session, "idempotency event count")?;
            let last_seq = first_seq
                .checked_add(events)
                .and_then(|end| end.checked_sub(1))
                .ok_or_else(|| bad(session, "idempotency range overflows"))?;
            let digest = if version == META_VERSION_3 {
                idem_digest(&take_str(&mut rest, session, "idempotency key")?)
            } else {
                let bytes = take(&mut rest, 8, session, "idempotency digest")?;
                u64::from_le_bytes(bytes.try_into().unwrap_or_default())
            };
            recent.push(RecentIdem {
                digest,
                first_seq,
                last_seq,
            });
        }
        let snapshot = match take(&mut rest, 1, session, "snapshot flag")? {
            [0] if rest.is_empty() => None,
            [1] => Some(rest.to_vec()),
            _ => {
                return Err(bad(
                    session,
                    "meta record has a bad snapshot flag or trailing bytes",
                ));
            }
        };
        if snapshot_seq > seq {
            return Err(bad(session, "snapshot sequence is beyond the head"));
        }
        Ok(Meta {
            seq,
            snapshot_seq,
            user,
            recent,
            snapshot,
        })
    }

    /// The range of the remembered append that used idempotency key `key`, if any.
    pub(crate) fn find_idem(&self, key: &str) -> Option<(u64, u64)> {
        let digest = idem_digest(key);
        // Newest first: a retry is most likely of the latest message.
        self.recent
            .iter()
            .rev()
            .find(|r| r.digest == digest)
            .map(|r| (r.first_seq, r.last_seq))
    }

    /// The public view of this record.
    pub(crate) fn into_loaded(self) -> LoadedSession {
        LoadedSession {
            seq: self.seq,
            snapshot_seq: self.snapshot_seq,
            snapshot: self.snapshot,
            user: self.user,
        }
    }
}

/// Encodes the events of one append as one `E` value: count, then each event as
/// [length, bytes] (varints).
pub(crate) fn encode_events(events: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = events.iter().map(|e| e.len() + 3).sum();
    let mut out = Vec::with_capacity(2 + len);
    varint::put(&mut out, events.len() as u64);
    for event in events {
        put_bytes(&mut out, event);
    }
    out
}

/// Decodes an `E` value into its events, in order; malformation is [`StoreError::BadRecord`].
pub(crate) fn decode_events<'a>(value: &'a [u8], session: &str) -> Result<Vec<&'a [u8]>> {
    let mut rest = value;
    let count = take_varint(&mut rest, session, "event count")?;
    let mut events = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(rest.len()));
    for _ in 0..count {
        let len = take_varint(&mut rest, session, "event length")?;
        let len = usize::try_from(len).map_err(|_| bad(session, "event length overflows"))?;
        events.push(take(&mut rest, len, session, "event")?);
    }
    if !rest.is_empty() {
        return Err(bad(session, "event record has trailing bytes"));
    }
    Ok(events)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn take<'a>(rest: &mut &'a [u8], n: usize, session: &str, what: &str) -> Result<&'a [u8]> {
    if rest.len() < n {
        return Err(bad(session, &format!("record is truncated at the {what}")));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_varint(rest: &mut &[u8], session: &str, what: &str) -> Result<u64> {
    crate::varint::take(rest)
        .ok_or_else(|| bad(session, &format!("record has a bad varint at the {what}")))
}

fn take_str(rest: &mut &[u8], session: &str, what: &str) -> Result<String> {
    let len = take_varint(rest, session, what)?;
    let len = usize::try_from(len).map_err(|_| bad(session, &format!("{what} overflows")))?;
    let bytes = take(rest, len, session, what)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| bad(session, &format!("{what} is not UTF-8")))
}

fn bad(session: &str, detail: &str) -> StoreError {
    StoreError::BadRecord {
        session: session.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_prefixes_do_not_collide() {
        let a = event_prefix("a");
        let ab = event_prefix("a\0b");
        assert!(!ab.starts_with(&a));
        assert!(!event_key(&ab, 1).starts_with(&a));
        assert!(!user_prefix("u\0x").starts_with(&user_prefix("u")));
    }

    const PINNED: [u64; 2] = [4_619_899_080_854_008_139, 14_222_787_933_236_865_430];

    fn recent(key: &str, first_seq: u64, last_seq: u64) -> RecentIdem {
        RecentIdem {
            digest: idem_digest(key),
            first_seq,
            last_seq,
        }
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        for meta in [
            Meta {
                seq: 7,
                snapshot_seq: 5,
                user: "用户\0".into(),
                recent: vec![recent("k\0键", 6, 7), recent("", 8, 7)],
                snapshot: Some(vec![1, 2]),
            },
            Meta {
                seq: 0,
                snapshot_seq: 0,
                user: String::new(),
                recent: Vec::new(),
                snapshot: None,
            },
            Meta {
                seq: u64::MAX,
                snapshot_seq: 3,
                user: "u".into(),
                recent: vec![recent("x", 1 << 40, (1 << 40) + 300)],
                snapshot: Some(vec![]),
            },
        ] {
            assert_eq!(Meta::decode(&meta.encode(), "s").ok(), Some(meta.clone()));
            let encoded = meta.encode();
            for cut in 0..encoded.len() - 1 {
                // Every strict prefix except a snapshot-truncation is rejected, never a panic.
                let _ = Meta::decode(&encoded[..cut], "s");
            }
        }
        assert!(Meta::decode(&[9, 0, 0], "s").is_err());
        assert!(Meta::decode(&[], "s").is_err());
        // An absurd key count or an overlong varint is an error, not an allocation or a panic.
        assert!(Meta::decode(&[META_VERSION, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f], "s").is_err());
        assert!(
            Meta::decode(
                &[
                    META_VERSION,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0x01
                ],
                "s"
            )
            .is_err()
        );
    }

    #[test]
    fn find_idem_answers_remembered_keys_only() {
        let meta = Meta {
            seq: 5,
            snapshot_seq: 5,
            user: "u".into(),
            recent: vec![recent("a", 1, 2), recent("b", 3, 5)],
            snapshot: None,
        };
        assert_eq!(meta.find_idem("a"), Some((1, 2)));
        assert_eq!(meta.find_idem("b"), Some((3, 5)));
        assert_eq!(meta.find_idem("c"), None);
    }

    #[test]
    fn version_3_records_still_decode_and_answer_retries() {
        // Layout 3 as an older kefu wrote it: the keys themselves, length-prefixed.
        let mut v3 = vec![META_VERSION_3, 5, 5, 1, b'u', 2];
        for (first, count, key) in [(1u8, 2u8, "a"), (3, 3, "msg-键")] {
            v3.extend_from_slice(&[first, count, key.len() as u8]);
            v3.extend_from_slice(key.as_bytes());
        }
        v3.extend_from_slice(&[1, b'{', b'}']);
        let meta = Meta::decode(&v3, "s").unwrap();
        assert_eq!(meta.find_idem("a"), Some((1, 2)));
        assert_eq!(meta.find_idem("msg-键"), Some((3, 5)));
        assert_eq!(meta.find_idem("b"), None);
        assert_eq!(meta.snapshot.as_deref(), Some(&b"{}"[..]));
        // Rewritten in the current layout, it says the same.
        let v4 = meta.encode();
        assert_eq!(v4[0], META_VERSION);
        assert_eq!(Meta::decode(&v4, "s").ok(), Some(meta));
    }

    #[test]
    fn idem_digest_is_fixed_across_processes_and_releases() {
        // Digests are stored on disk: a change of algorithm or keys would make every
        // remembered key unrecognisable after an upgrade. These values must never change.
        assert_eq!(idem_digest(""), PINNED[0]);
        assert_eq!(
            idem_digest("a474cb98-83a7-462a-828a-2bdbc7ec8557"),
            PINNED[1]
        );
        assert_ne!(idem_digest("a"), idem_digest("b"));
    }

    #[test]
    fn events_round_trip_and_reject_garbage() {
        for events in [
            vec![],
            vec![vec![]],
            vec![b"a".to_vec(), vec![7; 300], "用户".into()],
        ] {
            let encoded = encode_events(&events);
            let decoded = decode_events(&encoded, "s").unwrap();
            assert_eq!(
                decoded,
                events.iter().map(Vec::as_slice).collect::<Vec<_>>()
            );
            for cut in 0..encoded.len() {
                assert!(decode_events(&encoded[..cut], "s").is_err());
            }
        }
        assert!(decode_events(&[1, 0, 9], "s").is_err(), "trailing bytes");
        assert!(decode_events(&[0xff, 0xff, 0xff, 0xff, 0x0f], "s").is_err());
    }

    #[test]
    fn keys_decode() {
        let prefix = event_prefix("s");
        assert_eq!(
            event_seq(&prefix, &event_key(&prefix, 42), "s").ok(),
            Some(42)
        );
        let up = user_prefix("u");
        assert_eq!(
            user_key_session(&up, &user_key("u", "s\0x"), "u").ok(),
            Some("s\0x".into())
        );
    }
}
