//! Docker's multiplexed attach framing: an 8-byte header `[stream, 0, 0, 0, len BE u32]`
//! then `len` payload bytes. Stream 1 = stdout, 2 = stderr (0 = stdin, unused here).

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// Appends one frame (header + payload) to `out`.
pub fn encode_into(out: &mut Vec<u8>, stream: u8, payload: &[u8]) {
    let len = payload.len() as u32;
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits the first complete frame off `buf`: `(stream, payload, consumed bytes)`.
pub fn decode(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    Some((buf[0], &buf[8..8 + len], 8 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut v = Vec::new();
        encode_into(&mut v, STDOUT, b"hi\n");
        assert_eq!(v, [1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
        encode_into(&mut v, STDERR, &[7u8; 300]);
        assert_eq!(&v[11..19], &[2, 0, 0, 0, 0, 0, 1, 44]);
        let (s, p, n) = decode(&v).unwrap();
        assert_eq!((s, p, n), (1, &b"hi\n"[..], 11));
        let (s, p, _) = decode(&v[n..]).unwrap();
        assert_eq!((s, p.len()), (2, 300));
        assert!(decode(&v[..10]).is_none());
    }
}
