//! LEB128 varints, the number encoding of every compact record kefu stores (the sled
//! back-end's meta and event records, the session's events): small numbers take one or two
//! bytes. Shared so the one subtle part, rejecting an overlong or overflowing tenth byte, is
//! written once.

/// Appends `n` as a varint.
pub fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint from the front of `rest` and advances past it; `None` (and `rest`
/// unchanged) when it is truncated or does not fit in a `u64`.
pub fn take(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncated_or_overlong_input() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put(&mut buf, n);
            let mut rest = &buf[..];
            assert_eq!(take(&mut rest), Some(n));
            assert!(rest.is_empty());
            let mut cut = &buf[..buf.len() - 1];
            assert_eq!(take(&mut cut), None);
        }
        let mut overlong: &[u8] = &[0xff; 10];
        assert_eq!(take(&mut overlong), None);
        let mut too_big: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(take(&mut too_big), None);
    }
}
