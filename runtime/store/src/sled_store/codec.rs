//! Key and value encodings of the sled back-end's single tree.
//!
//! Every record lives in one sled tree, told apart by a one-byte kind prefix. Session keys and
//! user ids are arbitrary UTF-8 (they may contain `\0` or be prefixes of each other), so every
//! such string inside a key is **length-prefixed** (`u64` big-endian length, then the bytes).
//! That makes the encoding prefix-free: the prefix of session `"a"` can never be a prefix of the
//! keys of session `"a\0b"`, because the two start with different lengths.
//!
//! | kind | key                                        | value                                  |
//! |------|--------------------------------------------|----------------------------------------|
//! | `F`  | `F`                                        | format version (`u32` BE)              |
//! | `M`  | `M` len(session) session                   | [`Meta`]: head, snapshot seq, user, last idempotency key, snapshot |
//! | `E`  | `E` len(session) session seq(`u64` BE)     | event payload                          |
//! | `I`  | `I` len(session) session idempotency-key   | first seq, last seq (`u64` BE each)    |
//! | `U`  | `U` len(user) user session                 | empty                                  |
//!
//! Big-endian sequence numbers make sled's lexicographic order the numeric order, so an event
//! range is one ordered scan. The idempotency key and (in `U`) the session are the *last* part
//! of their key, so they need no length of their own.

use crate::{LoadedSession, Result, StoreError};

/// Kind byte of the in-tree format marker.
pub(crate) const FORMAT_KEY: &[u8] = b"F";
const META: u8 = b'M';
const EVENT: u8 = b'E';
const IDEM: u8 = b'I';
const USER: u8 = b'U';
/// Version byte leading every encoded [`Meta`], so a later layout can be told apart.
/// Version 2 added [`Meta::last_idem`].
const META_VERSION: u8 = 2;

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

/// Prefix of all idempotency records of a session.
pub(crate) fn idem_prefix(session: &str) -> Vec<u8> {
    with_str(IDEM, session, 0)
}

/// Key of one idempotency record.
pub(crate) fn idem_key(session: &str, idempotency_key: &str) -> Vec<u8> {
    let mut key = with_str(IDEM, session, idempotency_key.len());
    key.extend_from_slice(idempotency_key.as_bytes());
    key
}

/// Value of an idempotency record: the sequence range of the write that used the key.
pub(crate) fn idem_value(first_seq: u64, last_seq: u64) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&first_seq.to_be_bytes());
    value[8..].copy_from_slice(&last_seq.to_be_bytes());
    value
}

/// Decodes an idempotency record into `(first_seq, last_seq)`.
pub(crate) fn decode_idem(value: &[u8], session: &str) -> Result<(u64, u64)> {
    let (first, last) = value
        .split_first_chunk::<8>()
        .and_then(|(first, rest)| Some((first, <[u8; 8]>::try_from(rest).ok()?)))
        .ok_or_else(|| bad(session, "idempotency record is not 16 bytes"))?;
    Ok((u64::from_be_bytes(*first), u64::from_be_bytes(last)))
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

/// The idempotency key of a session's latest append and the range that append wrote.
///
/// It rides in the meta record (the commit point) so that the key is committed together with
/// the append; its own `I` record is written only by the *next* append, before that append
/// replaces the meta record. So an `I` record is never written before the append it names has
/// committed, and can be trusted whenever it exists (see `sled_store.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastIdem {
    /// The idempotency key.
    pub(crate) key: String,
    /// First sequence number of that append.
    pub(crate) first_seq: u64,
    /// Last sequence number of that append.
    pub(crate) last_seq: u64,
}

/// A session's meta record: everything `load` needs in one read, and the commit point of
/// every append (it is the last record an append writes).
///
/// The snapshot lives inside the meta record (not in a key of its own) because every turn
/// rewrites both anyway, and activation then costs a single point read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Head sequence number.
    pub(crate) seq: u64,
    /// Sequence number the snapshot was taken at.
    pub(crate) snapshot_seq: u64,
    /// The user recorded on the first write.
    pub(crate) user: String,
    /// The idempotency key of the append that wrote this record, if it had one.
    pub(crate) last_idem: Option<LastIdem>,
    /// The latest snapshot.
    pub(crate) snapshot: Option<Vec<u8>>,
}

impl Meta {
    /// Encodes as: version, seq, snapshot_seq, user length, user, has-last-key flag
    /// [first seq, last seq, key length, key], has-snapshot flag, snapshot.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let snap_len = self.snapshot.as_ref().map_or(0, Vec::len);
        let idem_len = self.last_idem.as_ref().map_or(0, |i| 24 + i.key.len());
        let mut out =
            Vec::with_capacity(1 + 8 + 8 + 8 + self.user.len() + 1 + idem_len + 1 + snap_len);
        out.push(META_VERSION);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.snapshot_seq.to_be_bytes());
        out.extend_from_slice(&(self.user.len() as u64).to_be_bytes());
        out.extend_from_slice(self.user.as_bytes());
        match &self.last_idem {
            Some(idem) => {
                out.push(1);
                out.extend_from_slice(&idem.first_seq.to_be_bytes());
                out.extend_from_slice(&idem.last_seq.to_be_bytes());
                out.extend_from_slice(&(idem.key.len() as u64).to_be_bytes());
                out.extend_from_slice(idem.key.as_bytes());
            }
            None => out.push(0),
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
        let version = take(&mut rest, 1, session, "version")?;
        if version != [META_VERSION] {
            return Err(bad(session, "meta record has an unknown version"));
        }
        let seq = take_u64(&mut rest, session, "head sequence")?;
        let snapshot_seq = take_u64(&mut rest, session, "snapshot sequence")?;
        let user_len = take_u64(&mut rest, session, "user length")?;
        let user_len =
            usize::try_from(user_len).map_err(|_| bad(session, "user length overflows"))?;
        let user = std::str::from_utf8(take(&mut rest, user_len, session, "user")?)
            .map_err(|_| bad(session, "user is not UTF-8"))?
            .to_owned();
        let last_idem = match take(&mut rest, 1, session, "idempotency flag")? {
            [0] => None,
            [1] => {
                let first_seq = take_u64(&mut rest, session, "idempotency first sequence")?;
                let last_seq = take_u64(&mut rest, session, "idempotency last sequence")?;
                let key_len = take_u64(&mut rest, session, "idempotency key length")?;
                let key_len = usize::try_from(key_len)
                    .map_err(|_| bad(session, "idempotency key length overflows"))?;
                let key =
                    std::str::from_utf8(take(&mut rest, key_len, session, "idempotency key")?)
                        .map_err(|_| bad(session, "idempotency key is not UTF-8"))?
                        .to_owned();
                Some(LastIdem {
                    key,
                    first_seq,
                    last_seq,
                })
            }
            _ => return Err(bad(session, "meta record has a bad idempotency flag")),
        };
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
            last_idem,
            snapshot,
        })
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

fn take<'a>(rest: &mut &'a [u8], n: usize, session: &str, what: &str) -> Result<&'a [u8]> {
    if rest.len() < n {
        return Err(bad(
            session,
            &format!("meta record is truncated at the {what}"),
        ));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u64(rest: &mut &[u8], session: &str, what: &str) -> Result<u64> {
    let bytes = take(rest, 8, session, what)?;
    let arr = <[u8; 8]>::try_from(bytes).map_err(|_| bad(session, "short integer"))?;
    Ok(u64::from_be_bytes(arr))
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
        assert!(!idem_key("a\0b", "k").starts_with(&idem_prefix("a")));
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        for meta in [
            Meta {
                seq: 7,
                snapshot_seq: 5,
                user: "用户\0".into(),
                last_idem: Some(LastIdem {
                    key: "k\0键".into(),
                    first_seq: 6,
                    last_seq: 7,
                }),
                snapshot: Some(vec![1, 2]),
            },
            Meta {
                seq: 0,
                snapshot_seq: 0,
                user: String::new(),
                last_idem: None,
                snapshot: None,
            },
            Meta {
                seq: 3,
                snapshot_seq: 3,
                user: "u".into(),
                last_idem: Some(LastIdem {
                    key: String::new(),
                    first_seq: 4,
                    last_seq: 3,
                }),
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
        assert_eq!(decode_idem(&idem_value(3, 9), "s").ok(), Some((3, 9)));
        assert!(decode_idem(&[1, 2], "s").is_err());
    }
}
