//! Control frames, without I/O: a 4-byte big-endian payload length, then
//! the payload (one JSON document).
//!
//! ```text
//! +----------------+---------------------------+
//! | length: u32 BE | payload: `length` bytes   |
//! +----------------+---------------------------+
//! ```
//!
//! The length is checked against the caller's maximum before anything is
//! buffered for the payload, so a peer cannot make us allocate by claiming
//! a large frame.

use crate::defs::FRAME_HEADER_LEN;

/// Why no frame could be taken from a buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed; not an error of the peer.
    #[error("incomplete frame")]
    Incomplete,
    /// The announced payload is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Looks for a complete frame at the start of `buf`. Returns the payload's
/// range and the total length of the frame.
pub fn parse(buf: &[u8], max: usize) -> Result<(std::ops::Range<usize>, usize), FrameError> {
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else {
        return Err(FrameError::Incomplete);
    };
    let mut len_bytes = [0u8; FRAME_HEADER_LEN];
    len_bytes.copy_from_slice(header);
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let end = FRAME_HEADER_LEN + len;
    if buf.len() < end {
        return Err(FrameError::Incomplete);
    }
    Ok((FRAME_HEADER_LEN..end, end))
}

/// Builds a frame around `payload`.
pub fn encode(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    if payload.len() > max || u32::try_from(payload.len()).is_err() {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_incomplete() {
        let frame = encode(b"{\"a\":1}", 100).unwrap();
        let (range, used) = parse(&frame, 100).unwrap();
        assert_eq!(&frame[range], b"{\"a\":1}");
        assert_eq!(used, frame.len());
        for cut in 0..frame.len() {
            assert_eq!(parse(&frame[..cut], 100), Err(FrameError::Incomplete));
        }
    }

    #[test]
    fn too_large_is_refused_from_the_header_alone() {
        let header = (1_000_000u32).to_be_bytes();
        assert_eq!(
            parse(&header, 1000),
            Err(FrameError::TooLarge {
                len: 1_000_000,
                max: 1000
            })
        );
        assert!(encode(&[0; 11], 10).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes, 32);
        }
    }
}
