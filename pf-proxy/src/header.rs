//! The original-destination header of transparent egress: bytes <-> address, no I/O.
//!
//! `ip-to-vsock-transparent` sends it ahead of the stream so that
//! `vsock-to-ip-transparent` on the other end of the vsock knows where the
//! enclave meant to connect:
//!
//! ```text
//! offset  size  field
//! 0       2     magic "PF"
//! 2       1     version, 1
//! 3       1     family: 4 (IPv4) or 6 (IPv6)
//! 4       2     destination port, big endian, not 0
//! 6       4|16  destination address, network order
//! ```
//!
//! The stream's bytes follow at once. A reader takes the fixed
//! [`HEADER_PREFIX_LEN`] bytes first, learns the address length from
//! [`address_len`], then reads exactly that many: it never consumes a byte of
//! the payload and never allocates from a peer's number.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::defs::{
    HEADER_FAMILY_V4, HEADER_FAMILY_V6, HEADER_MAGIC, HEADER_MAX_LEN, HEADER_PREFIX_LEN,
    HEADER_VERSION,
};

/// Why bytes are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More bytes are needed; not an error of the bytes seen so far.
    #[error("incomplete header: {needed} byte(s) in all are needed")]
    Incomplete {
        /// Length of the whole header, as far as it is known.
        needed: usize,
    },
    /// The stream does not start with the magic bytes.
    #[error("not an original-destination header (starts with {0:02x?})")]
    BadMagic([u8; 2]),
    /// A header version this build does not speak.
    #[error("unsupported header version {0} (this build speaks {HEADER_VERSION})")]
    UnsupportedVersion(u8),
    /// An address family other than 4 and 6.
    #[error("unknown address family {0} in header")]
    UnknownFamily(u8),
    /// Destination port 0, which nothing can connect to.
    #[error("destination port 0 in header")]
    ZeroPort,
}

/// Encodes `dst` into a header; returns the buffer and the used length.
pub fn encode(dst: &SocketAddr) -> ([u8; HEADER_MAX_LEN], usize) {
    let mut buf = [0u8; HEADER_MAX_LEN];
    buf[..2].copy_from_slice(&HEADER_MAGIC);
    buf[2] = HEADER_VERSION;
    buf[4..6].copy_from_slice(&dst.port().to_be_bytes());
    let len = match dst.ip() {
        IpAddr::V4(ip) => {
            buf[3] = HEADER_FAMILY_V4;
            buf[6..10].copy_from_slice(&ip.octets());
            HEADER_PREFIX_LEN + 4
        }
        IpAddr::V6(ip) => {
            buf[3] = HEADER_FAMILY_V6;
            buf[6..22].copy_from_slice(&ip.octets());
            HEADER_PREFIX_LEN + 16
        }
    };
    (buf, len)
}

/// Checks the fixed prefix and returns the length of the address after it.
pub fn address_len(prefix: &[u8; HEADER_PREFIX_LEN]) -> Result<usize, HeaderError> {
    let magic = [prefix[0], prefix[1]];
    if magic != HEADER_MAGIC {
        return Err(HeaderError::BadMagic(magic));
    }
    if prefix[2] != HEADER_VERSION {
        return Err(HeaderError::UnsupportedVersion(prefix[2]));
    }
    let len = match prefix[3] {
        HEADER_FAMILY_V4 => 4,
        HEADER_FAMILY_V6 => 16,
        other => return Err(HeaderError::UnknownFamily(other)),
    };
    if prefix[4..6] == [0, 0] {
        return Err(HeaderError::ZeroPort);
    }
    Ok(len)
}

/// Decodes a header from the start of `buf`; returns the destination and the
/// number of bytes the header took. Bytes after it are left alone.
pub fn decode(buf: &[u8]) -> Result<(SocketAddr, usize), HeaderError> {
    // Check what is there before asking for more, so garbage fails at once.
    let mut prefix = [0u8; HEADER_PREFIX_LEN];
    let seen = buf.len().min(HEADER_PREFIX_LEN);
    prefix[..seen].copy_from_slice(&buf[..seen]);
    if seen >= 2 && prefix[..2] != HEADER_MAGIC {
        return Err(HeaderError::BadMagic([prefix[0], prefix[1]]));
    }
    if seen < HEADER_PREFIX_LEN {
        return Err(HeaderError::Incomplete {
            needed: HEADER_PREFIX_LEN,
        });
    }
    let addr_len = address_len(&prefix)?;
    let total = HEADER_PREFIX_LEN + addr_len;
    let Some(addr) = buf.get(HEADER_PREFIX_LEN..total) else {
        return Err(HeaderError::Incomplete { needed: total });
    };
    let port = u16::from_be_bytes([prefix[4], prefix[5]]);
    let ip = match <[u8; 4]>::try_from(addr) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => {
            let mut v6 = [0u8; 16];
            v6.copy_from_slice(addr);
            IpAddr::V6(Ipv6Addr::from(v6))
        }
    };
    Ok((SocketAddr::new(ip, port), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_layout_is_as_documented() {
        let (buf, len) = encode(&"192.0.2.7:443".parse().unwrap());
        assert_eq!(&buf[..len], b"PF\x01\x04\x01\xbb\xc0\x00\x02\x07");
    }

    #[test]
    fn ipv6_round_trip_and_trailing_bytes_untouched() {
        let dst: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
        let (buf, len) = encode(&dst);
        assert_eq!(len, HEADER_MAX_LEN);
        let mut wire = buf[..len].to_vec();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(decode(&wire), Ok((dst, len)));
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(
            decode(b"GE"),
            Err(HeaderError::BadMagic(*b"GE")),
            "garbage fails before the prefix is complete"
        );
        assert_eq!(
            decode(b"PF\x02\x04\x00\x50"),
            Err(HeaderError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(b"PF\x01\x05\x00\x50"),
            Err(HeaderError::UnknownFamily(5))
        );
        assert_eq!(decode(b"PF\x01\x04\x00\x00"), Err(HeaderError::ZeroPort));
    }

    #[test]
    fn truncated_headers_are_incomplete_not_invalid() {
        assert_eq!(decode(b""), Err(HeaderError::Incomplete { needed: 6 }));
        assert_eq!(
            decode(b"PF\x01"),
            Err(HeaderError::Incomplete { needed: 6 })
        );
        assert_eq!(
            decode(b"PF\x01\x06\x00\x50\x20\x01"),
            Err(HeaderError::Incomplete { needed: 22 })
        );
    }

    proptest! {
        #[test]
        fn round_trips(ip in any::<IpAddr>(), port in 1u16..) {
            let dst = SocketAddr::new(ip, port);
            let (buf, len) = encode(&dst);
            prop_assert_eq!(decode(&buf[..len]), Ok((dst, len)));
            // Every strict prefix is incomplete, never invalid.
            for cut in 0..len {
                let is_incomplete = matches!(decode(&buf[..cut]), Err(HeaderError::Incomplete { .. }));
                prop_assert!(is_incomplete);
            }
        }

        #[test]
        fn decoder_never_panics_nor_overreads(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((_, used)) = decode(&bytes) {
                prop_assert!(used <= bytes.len() && used <= HEADER_MAX_LEN);
            }
        }
    }
}
