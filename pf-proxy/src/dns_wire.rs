//! The few pieces of the DNS wire format (RFC 1035) the proxies need, no I/O.
//!
//! - Framing of DNS over a stream (RFC 1035 4.2.2, as DNS over TCP): each
//!   message is preceded by its length as two bytes, big endian.
//! - Building an A/AAAA query, and reading the addresses and TTLs out of
//!   the answer, for the egress policy's host names.
//!
//! Everything read from a message is bounds-checked; compressed names are
//! skipped, never followed, so a hostile message cannot loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::defs::{DNS_HEADER_LEN, DNS_MAX_MESSAGE, DNS_MAX_NAME, POLICY_MAX_ADDRS_PER_HOST};

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Why bytes are not a usable DNS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the 12-byte header.
    #[error("DNS message of {0} byte(s) is shorter than its header")]
    TooShort(usize),
    /// Longer than a DNS message can be.
    #[error("DNS message of {0} bytes is longer than {DNS_MAX_MESSAGE}")]
    TooLong(usize),
    /// A name, record or count runs past the end of the message.
    #[error("DNS message is truncated or malformed at byte {0}")]
    Malformed(usize),
    /// Not an answer to the query sent.
    #[error("DNS answer id {got} does not match query id {want}")]
    WrongId {
        /// The query's id.
        want: u16,
        /// The answer's id.
        got: u16,
    },
    /// A host name that cannot be put in a query.
    #[error("invalid host name {0:?}")]
    BadName(String),
}

/// Checks that `msg` can be a DNS message (header present, length in range).
pub fn check_message(msg: &[u8]) -> Result<(), WireError> {
    if msg.len() < DNS_HEADER_LEN {
        return Err(WireError::TooShort(msg.len()));
    }
    if msg.len() > DNS_MAX_MESSAGE {
        return Err(WireError::TooLong(msg.len()));
    }
    Ok(())
}

/// The two-byte length prefix of `msg` on a stream.
pub fn length_prefix(msg: &[u8]) -> Result<[u8; 2], WireError> {
    check_message(msg)?;
    let len = u16::try_from(msg.len()).map_err(|_| WireError::TooLong(msg.len()))?;
    Ok(len.to_be_bytes())
}

/// The id of a message (first two bytes).
pub fn message_id(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

/// Whether the TC (truncated) flag of an answer is set.
pub fn is_truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// Checks a host name against RFC 1035 limits.
pub fn check_name(name: &str) -> Result<(), WireError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let bad = || WireError::BadName(name.to_owned());
    if trimmed.is_empty() || trimmed.len() > DNS_MAX_NAME {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// Builds a recursive query for `name` of type `qtype`.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    check_name(name)?;
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut msg = Vec::with_capacity(DNS_HEADER_LEN + trimmed.len() + 6);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00]); // RD
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in trimmed.split('.') {
        // check_name bounded every label to 63 bytes.
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(msg)
}

/// The outcome of a lookup as far as the policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// Response code (0 = no error, 3 = no such name).
    pub rcode: u8,
    /// Every A and AAAA record of the answer section, with its TTL in seconds.
    pub records: Vec<(IpAddr, u32)>,
}

/// Reads the A and AAAA records out of the answer to query `id`.
pub fn parse_addresses(msg: &[u8], id: u16) -> Result<Addresses, WireError> {
    check_message(msg)?;
    let got = u16::from_be_bytes([msg[0], msg[1]]);
    if got != id || msg[2] & 0x80 == 0 {
        return Err(WireError::WrongId { want: id, got });
    }
    let rcode = msg[3] & 0x0f;
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let (mut pos, _) = question_end(msg)?;
    let mut records = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or(WireError::Malformed(pos))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10;
        let rdata = msg.get(pos..pos + rdlen).ok_or(WireError::Malformed(pos))?;
        pos += rdlen;
        if class != CLASS_IN || records.len() >= POLICY_MAX_ADDRS_PER_HOST {
            continue;
        }
        match (rtype, rdata.len()) {
            (TYPE_A, 4) => {
                let octets: [u8; 4] = [rdata[0], rdata[1], rdata[2], rdata[3]];
                records.push((IpAddr::V4(Ipv4Addr::from(octets)), ttl));
            }
            (TYPE_AAAA, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(rdata);
                records.push((IpAddr::V6(Ipv6Addr::from(octets)), ttl));
            }
            _ => {}
        }
    }
    Ok(Addresses { rcode, records })
}

/// Builds the answer to `query` carrying `records` (each owned by the
/// question's name), as a resolver would; for test resolvers and tools.
pub fn build_answer(query: &[u8], records: &[(IpAddr, u32)]) -> Result<Vec<u8>, WireError> {
    check_message(query)?;
    let mut msg = query.to_vec();
    msg[2] |= 0x80;
    let count = u16::try_from(records.len()).unwrap_or(u16::MAX);
    msg[6..8].copy_from_slice(&count.to_be_bytes());
    for (ip, ttl) in records {
        msg.extend_from_slice(&[0xc0, 12]);
        let (rtype, data) = match ip {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        msg.extend_from_slice(&rtype.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        msg.extend_from_slice(&ttl.to_be_bytes());
        msg.extend_from_slice(&(data.len() as u16).to_be_bytes()); // 4 or 16
        msg.extend_from_slice(&data);
    }
    Ok(msg)
}

/// Type of the EDNS0 OPT pseudo-record, whose class is the UDP payload
/// size the client accepts.
pub const TYPE_OPT: u16 = 41;

/// Largest UDP answer a client without EDNS0 accepts.
pub const UDP_PLAIN_LIMIT: usize = 512;

/// The largest UDP answer the client of `query` accepts: its EDNS0 payload
/// size, or 512 bytes without EDNS0.
pub fn udp_payload_limit(query: &[u8]) -> usize {
    let Ok((mut pos, _)) = question_end(query) else {
        return UDP_PLAIN_LIMIT;
    };
    let additional = u16::from_be_bytes([query[10], query[11]]);
    let (answers, authority) = (
        u16::from_be_bytes([query[6], query[7]]),
        u16::from_be_bytes([query[8], query[9]]),
    );
    for index in 0..u32::from(answers) + u32::from(authority) + u32::from(additional) {
        let Ok(after_name) = skip_name(query, pos) else {
            break;
        };
        let Some(fixed) = query.get(after_name..after_name + 10) else {
            break;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let is_additional = index >= u32::from(answers) + u32::from(authority);
        if is_additional && rtype == TYPE_OPT {
            return usize::from(class).max(UDP_PLAIN_LIMIT);
        }
        pos = after_name + 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    UDP_PLAIN_LIMIT
}

/// Offset of the end of the question section, and the question count.
fn question_end(msg: &[u8]) -> Result<(usize, u16), WireError> {
    check_message(msg)?;
    let questions = u16::from_be_bytes([msg[4], msg[5]]);
    let mut pos = DNS_HEADER_LEN;
    for _ in 0..questions {
        pos = skip_name(msg, pos)? + 4;
        if pos > msg.len() {
            return Err(WireError::Malformed(pos));
        }
    }
    Ok((pos, questions))
}

/// A reply to `query` with no records: its header and question, the QR and
/// RA flags, `rcode`, and the TC flag if `truncated` (telling the client to
/// ask again over TCP). Used for SERVFAIL and for answers too big for UDP.
pub fn empty_reply(query: &[u8], truncated: bool, rcode: u8) -> Result<Vec<u8>, WireError> {
    let (end, _) = question_end(query)?;
    let mut reply = query[..end].to_vec();
    reply[2] = (reply[2] | 0x80) & !0x02 | if truncated { 0x02 } else { 0 };
    reply[3] = 0x80 | (rcode & 0x0f);
    reply[6..12].fill(0);
    Ok(reply)
}

/// Returns the offset just past the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, WireError> {
    loop {
        let len = *msg.get(pos).ok_or(WireError::Malformed(pos))?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => {
                msg.get(pos + 1).ok_or(WireError::Malformed(pos))?;
                return Ok(pos + 2);
            }
            _ => return Err(WireError::Malformed(pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn query_layout() {
        let q = build_query(0x1234, "a.example.", TYPE_A).unwrap();
        assert_eq!(
            q,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x07example\x00\x00\x01\x00\x01"
        );
    }

    #[test]
    fn reads_addresses_and_ttls() {
        let q = build_query(7, "host.test", TYPE_A).unwrap();
        let records = vec![
            ("192.0.2.1".parse().unwrap(), 30),
            ("2001:db8::1".parse().unwrap(), 60),
        ];
        let parsed = parse_addresses(&build_answer(&q, &records).unwrap(), 7).unwrap();
        assert_eq!(parsed.rcode, 0);
        assert_eq!(parsed.records, records);
        assert!(matches!(
            parse_addresses(&build_answer(&q, &records).unwrap(), 8),
            Err(WireError::WrongId { want: 8, got: 7 })
        ));
    }

    #[test]
    fn rejects_bad_names_and_messages() {
        for name in ["", ".", "a..b", "a b", &"x".repeat(64), &"a.".repeat(130)] {
            assert!(build_query(1, name, TYPE_A).is_err(), "{name:?}");
        }
        assert_eq!(check_message(&[0; 11]), Err(WireError::TooShort(11)));
        assert_eq!(
            check_message(&vec![0; 65_536]),
            Err(WireError::TooLong(65_536))
        );
        let q = build_query(1, "a.test", TYPE_A).unwrap();
        let mut truncated = build_answer(&q, &[("192.0.2.1".parse().unwrap(), 1)]).unwrap();
        truncated.pop();
        assert!(matches!(
            parse_addresses(&truncated, 1),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn udp_limit_follows_edns0() {
        let mut q = build_query(1, "a.test", TYPE_A).unwrap();
        assert_eq!(udp_payload_limit(&q), 512);
        q[11] = 1; // one additional record: OPT, payload 1232
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(udp_payload_limit(&q), 1232);
        let reply = empty_reply(&q, true, 0).unwrap();
        assert_eq!(reply.len(), q.len() - 11, "OPT record dropped");
        assert!(is_truncated(&reply));
        assert_eq!(reply[2] & 0x80, 0x80);
        assert_eq!(&reply[6..12], &[0; 6]);
        assert_eq!(empty_reply(&q, false, 2).unwrap()[3] & 0x0f, 2);
    }

    #[test]
    fn truncation_flag() {
        assert!(is_truncated(&[0, 0, 0x82, 0]));
        assert!(!is_truncated(&[0, 0, 0x80, 0]));
        assert!(!is_truncated(&[]));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), id in any::<u16>()) {
            let _ = parse_addresses(&bytes, id);
            let _ = udp_payload_limit(&bytes);
            if let Ok(reply) = empty_reply(&bytes, true, 2) {
                prop_assert!(reply.len() <= bytes.len());
            }
        }

        #[test]
        fn valid_names_build(labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..6)) {
            let name = labels.join(".");
            let q = build_query(3, &name, TYPE_AAAA).unwrap();
            prop_assert!(parse_addresses(&build_answer(&q, &[]).unwrap(), 3).unwrap().records.is_empty());
        }
    }
}
