//! The little of the DNS wire format (RFC 1035) the resolver needs: the header and the
//! first question of a query, and answers built from it (A, AAAA, PTR, or only a
//! response code). Everything else (forwarded queries and their answers) is relayed
//! as bytes and never parsed. Pure code: no sockets.

use std::net::IpAddr;

/// Largest message accepted or produced over UDP without EDNS; TCP messages are at
/// most 65535 bytes by their length prefix.
pub const UDP_MAX: usize = 512;

/// Record types the resolver answers itself.
pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Response codes.
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// TTL of the resolver's own answers: short, containers come and go.
const TTL: u32 = 60;

/// A parsed query: the header fields a reply echoes and its first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Opcode (0 = standard query).
    pub opcode: u8,
    /// Recursion desired.
    pub rd: bool,
    /// The question name, lower-cased, without the trailing dot ("" is the root).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section's bytes as received (echoed in replies).
    question: Vec<u8>,
}

/// Why a message could not be read as a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than a header, or not a query (QR set): no reply at all.
    Drop,
    /// A header with an id but a broken question: FORMERR with that id.
    Format(u16),
}

/// Reads the header and the first question of `msg`.
pub fn parse_query(msg: &[u8]) -> Result<Query, ParseError> {
    if msg.len() < 12 {
        return Err(ParseError::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    if msg[2] & 0x80 != 0 {
        return Err(ParseError::Drop);
    }
    let opcode = (msg[2] >> 3) & 0x0f;
    let rd = msg[2] & 0x01 != 0;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount != 1 {
        return Err(ParseError::Format(id));
    }
    let (name, end) = read_name(msg, 12).ok_or(ParseError::Format(id))?;
    if end + 4 > msg.len() {
        return Err(ParseError::Format(id));
    }
    let qtype = u16::from_be_bytes([msg[end], msg[end + 1]]);
    let qclass = u16::from_be_bytes([msg[end + 2], msg[end + 3]]);
    Ok(Query { id, opcode, rd, name, qtype, qclass, question: msg[12..end + 4].to_vec() })
}

/// Reads an uncompressed or compressed name at `pos`; returns it (lower case, dotted,
/// no trailing dot) and the offset just after it in the message. Pointers must point
/// backwards, which bounds the walk.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut end = None;
    let mut limit = pos;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let end = end.unwrap_or(pos + 1);
                    return (out.len() <= 253).then_some((out, end));
                }
                let label = msg.get(pos + 1..pos + 1 + len)?;
                if !out.is_empty() {
                    out.push('.');
                }
                for &b in label {
                    // Names the resolver knows are ASCII; anything else stays distinct.
                    if b == b'.' || !b.is_ascii_graphic() {
                        out.push_str(&format!("\\{b:03}"));
                    } else {
                        out.push(b.to_ascii_lowercase() as char);
                    }
                }
                if out.len() > 1024 {
                    return None;
                }
                pos += 1 + len;
            }
            0xc0 => {
                let ptr = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                if ptr >= limit {
                    return None;
                }
                end.get_or_insert(pos + 2);
                limit = ptr;
                pos = ptr;
            }
            _ => return None,
        }
    }
}

/// One answer record the resolver produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Addr(IpAddr),
    Ptr(String),
}

/// A reply to `q` with `rcode` and `answers` (authoritative, recursion available). Over
/// UDP (`max` = [`UDP_MAX`]) answers that do not fit are dropped and TC is set.
pub fn reply(q: &Query, rcode: u8, answers: &[Answer], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&q.id.to_be_bytes());
    let aa = if rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN { 0x04 } else { 0 };
    out.push(0x80 | (q.opcode << 3) | aa | u8::from(q.rd));
    out.push(0x80 | (rcode & 0x0f));
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    let mut count: u16 = 0;
    for a in answers {
        let mut rr = Vec::with_capacity(32);
        rr.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        let (ty, data) = match a {
            Answer::Addr(IpAddr::V4(v4)) => (TYPE_A, v4.octets().to_vec()),
            Answer::Addr(IpAddr::V6(v6)) => (TYPE_AAAA, v6.octets().to_vec()),
            Answer::Ptr(name) => match encode_name(name) {
                Some(n) => (TYPE_PTR, n),
                None => continue,
            },
        };
        rr.extend_from_slice(&ty.to_be_bytes());
        rr.extend_from_slice(&CLASS_IN.to_be_bytes());
        rr.extend_from_slice(&TTL.to_be_bytes());
        rr.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rr.extend_from_slice(&data);
        if out.len() + rr.len() > max {
            out[2] |= 0x02; // TC
            break;
        }
        out.extend_from_slice(&rr);
        count += 1;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    out
}

/// A reply carrying only a response code, for messages that were not parsed further
/// than their id (FORMERR).
pub fn error_reply(id: u16, rcode: u8) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0..2].copy_from_slice(&id.to_be_bytes());
    out[2] = 0x80;
    out[3] = 0x80 | (rcode & 0x0f);
    out
}

/// `name` (dotted, no trailing dot) in wire form; `None` for labels longer than 63.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// The address a PTR name (`4.3.2.1.in-addr.arpa`, nibbles `….ip6.arpa`) stands for.
pub fn ptr_addr(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut o: Vec<u8> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        if o.len() != 4 {
            return None;
        }
        o.reverse();
        return Some(IpAddr::from([o[0], o[1], o[2], o[3]]));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|p| if p.len() == 1 { u8::from_str_radix(p, 16).ok() } else { None })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        // rchunks from the end: the last two nibbles are the first byte (high, low).
        b[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::from(b))
}

/// The id of a reply (the first two bytes), to match forwarded answers.
pub fn message_id(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

#[cfg(test)]
pub(crate) fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&encode_name(name).expect("test name"));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_query_table() {
        let ok = build_query(0x1234, "Db.Example", TYPE_A);
        let mut compressed = build_query(7, "x", TYPE_A);
        // A second copy of the question whose name is a pointer back to offset 12 is
        // not a question any more; a question pointing forward is refused.
        compressed.truncate(12);
        compressed.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        let mut resp = ok.clone();
        resp[2] |= 0x80;
        let mut two = ok.clone();
        two[5] = 2;
        let mut short = ok.clone();
        short.truncate(ok.len() - 1);
        type Case = (&'static str, Vec<u8>, Result<(&'static str, u16), ParseError>);
        let cases: Vec<Case> = vec![
            ("plain", ok.clone(), Ok(("db.example", TYPE_A))),
            ("self pointer", compressed, Err(ParseError::Format(7))),
            ("response", resp, Err(ParseError::Drop)),
            ("two questions", two, Err(ParseError::Format(0x1234))),
            ("truncated", short, Err(ParseError::Format(0x1234))),
            ("header only", vec![0; 11], Err(ParseError::Drop)),
            ("root", build_query(1, "", TYPE_A), Ok(("", TYPE_A))),
        ];
        for (what, msg, want) in cases {
            let got = parse_query(&msg).map(|q| (q.name.clone(), q.qtype));
            let want = want.map(|(n, t)| (n.to_string(), t));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn reply_carries_answers_and_question() {
        let q = parse_query(&build_query(9, "db", TYPE_A)).expect("query");
        let r = reply(&q, RCODE_NOERROR, &[Answer::Addr("10.0.0.2".parse().expect("ip"))], UDP_MAX);
        assert_eq!(&r[0..2], &9u16.to_be_bytes());
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(r[2] & 0x04, 0x04, "authoritative");
        assert_eq!(r[3] & 0x0f, RCODE_NOERROR);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        let nx = reply(&q, RCODE_NXDOMAIN, &[], UDP_MAX);
        assert_eq!(nx[3] & 0x0f, RCODE_NXDOMAIN);
        assert_eq!(u16::from_be_bytes([nx[6], nx[7]]), 0);
    }

    #[test]
    fn reply_truncates_over_udp() {
        let q = parse_query(&build_query(1, "many", TYPE_A)).expect("query");
        let answers: Vec<Answer> = (0..100u8).map(|i| Answer::Addr(IpAddr::from([10, 0, 0, i]))).collect();
        let r = reply(&q, RCODE_NOERROR, &answers, UDP_MAX);
        assert!(r.len() <= UDP_MAX);
        assert_eq!(r[2] & 0x02, 0x02, "TC");
        let full = reply(&q, RCODE_NOERROR, &answers, 65535);
        assert_eq!(u16::from_be_bytes([full[6], full[7]]), 100);
    }

    #[test]
    fn ptr_addr_table() {
        let cases = [
            ("2.0.18.172.in-addr.arpa", Some("172.18.0.2")),
            ("1.2.3.in-addr.arpa", None),
            ("x.2.3.4.in-addr.arpa", None),
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.ip6.arpa",
                Some("db8::1"),
            ),
            ("example.com", None),
        ];
        for (name, want) in cases {
            assert_eq!(ptr_addr(name), want.map(|w| w.parse().expect("ip")), "{name}");
        }
        assert_eq!(ptr_addr("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
            Some("2001:db8::1".parse().expect("ip")));
    }

    proptest! {
        #[test]
        fn parse_never_panics(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(q) = parse_query(&msg) {
                let r = reply(&q, RCODE_NOERROR, &[Answer::Ptr(q.name.clone())], UDP_MAX);
                prop_assert!(r.len() <= UDP_MAX.max(12 + q.question.len()));
            }
        }

        #[test]
        fn round_trip(labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5), qtype in any::<u16>(), id in any::<u16>()) {
            let name = labels.join(".");
            let q = parse_query(&build_query(id, &name, qtype)).expect("query");
            prop_assert_eq!(q.name, name);
            prop_assert_eq!(q.qtype, qtype);
            prop_assert_eq!(q.id, id);
        }
    }
}
