//! Frames: bytes <-> [`Frame`], no I/O.
//!
//! [`Frame::parse`] takes complete frames off the front of a buffer. "Not
//! enough bytes yet" is [`FrameError::Incomplete`], kept apart from the
//! errors that mean the peer sent something invalid, and the length in a
//! header is checked against [`MAX_FRAME_LEN`] before anything is allocated.

use bytes::{Buf, Bytes, BytesMut};

use crate::defs::{FRAME_HEADER_LEN, MAX_FRAME_LEN};
use crate::protocol::message::Message;

/// Frame kind of a postcard-encoded [`Message`].
const KIND_CONTROL: u8 = 0;

/// Which stream the raw bytes of a data frame belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Channel {
    /// Content of the file announced by the last entry.
    FileData = 1,
    /// Standard output of a remote command.
    Stdout = 2,
    /// Standard error of a remote command.
    Stderr = 3,
    /// Standard input for a remote command.
    Stdin = 4,
}

impl Channel {
    /// The channel a frame kind byte names, if any.
    pub fn from_kind(kind: u8) -> Option<Self> {
        match kind {
            1 => Some(Channel::FileData),
            2 => Some(Channel::Stdout),
            3 => Some(Channel::Stderr),
            4 => Some(Channel::Stdin),
            _ => None,
        }
    }
}

/// One unit of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A control message.
    Control(Message),
    /// Raw bytes on a channel.
    Data(Channel, Bytes),
}

/// Why bytes could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed; not an error of the peer.
    #[error("incomplete frame")]
    Incomplete,
    /// The header announces a body over the limit.
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLong {
        /// The announced length.
        len: usize,
    },
    /// The kind byte names no known frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The body of a control frame is not a valid message.
    #[error("malformed control message: {0}")]
    Decode(String),
    /// A message could not be encoded within the frame limit.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl Frame {
    /// Validates the header at the front of `buf` and returns the length of
    /// the whole frame, header included.
    pub fn check(buf: &[u8]) -> Result<usize, FrameError> {
        if buf.len() < FRAME_HEADER_LEN {
            return Err(FrameError::Incomplete);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len });
        }
        let kind = buf[4];
        if kind != KIND_CONTROL && Channel::from_kind(kind).is_none() {
            return Err(FrameError::UnknownKind(kind));
        }
        let total = FRAME_HEADER_LEN + len;
        if buf.len() < total {
            return Err(FrameError::Incomplete);
        }
        Ok(total)
    }

    /// Takes one complete frame off the front of `buf`; `Ok(None)` when more
    /// bytes are needed. Data frame bodies are split off without copying.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let total = match Frame::check(buf) {
            Ok(total) => total,
            Err(FrameError::Incomplete) => return Ok(None),
            Err(err) => return Err(err),
        };
        let kind = buf[4];
        buf.advance(FRAME_HEADER_LEN);
        let body = buf.split_to(total - FRAME_HEADER_LEN);
        match Channel::from_kind(kind) {
            Some(channel) => Ok(Some(Frame::Data(channel, body.freeze()))),
            None => Ok(Some(Frame::Control(decode_message(&body)?))),
        }
    }

    /// The header of a data frame carrying `len` bytes on `channel`.
    pub fn data_header(channel: Channel, len: usize) -> Result<[u8; FRAME_HEADER_LEN], FrameError> {
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len });
        }
        Ok(header(len, channel as u8))
    }

    /// Appends the complete encoding of `message` (header and body) to `out`.
    pub fn encode_control(message: &Message, out: &mut Vec<u8>) -> Result<(), FrameError> {
        // Encoded apart first: a message that fails or is too long leaves
        // `out` as it was.
        let body =
            postcard::to_allocvec(message).map_err(|err| FrameError::Encode(err.to_string()))?;
        if body.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len: body.len() });
        }
        out.extend_from_slice(&header(body.len(), KIND_CONTROL));
        out.extend_from_slice(&body);
        Ok(())
    }
}

fn header(len: usize, kind: u8) -> [u8; FRAME_HEADER_LEN] {
    // Callers checked len <= MAX_FRAME_LEN, which fits in a u32.
    let len = (len as u32).to_be_bytes();
    [len[0], len[1], len[2], len[3], kind]
}

fn decode_message(body: &[u8]) -> Result<Message, FrameError> {
    // The body is at most MAX_FRAME_LEN bytes (checked before); for a
    // claimed sequence length serde reserves at most 1 MiB, and every
    // element, string or byte string must come out of the body's bytes.
    let (message, rest) = postcard::take_from_bytes::<Message>(body)
        .map_err(|err| FrameError::Decode(err.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes after the message",
            rest.len()
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{ErrorCode, ErrorFrame, ExitStatus};
    use proptest::prelude::*;

    fn encode(message: &Message) -> BytesMut {
        let mut out = Vec::new();
        Frame::encode_control(message, &mut out).unwrap();
        BytesMut::from(&out[..])
    }

    /// A protocol 1 client's `Hello` (bincode 2, standard configuration) is
    /// the same bytes in postcard, so the server can tell it which versions
    /// it speaks instead of failing to decode it.
    #[test]
    fn a_version_1_hello_decodes_so_the_peer_can_be_told_why() {
        // length 6, kind 0; variant 0 (Hello), min 1, max 1, client "v1".
        let mut buf = BytesMut::from(&[0, 0, 0, 6, 0, 0, 1, 1, 2, b'v', b'1'][..]);
        let frame = Frame::parse(&mut buf).unwrap().unwrap();
        match frame {
            Frame::Control(Message::Hello {
                min_version,
                max_version,
                client,
            }) => {
                assert_eq!((min_version, max_version), (1, 1));
                assert_eq!(client, "v1");
            }
            other => panic!("not a Hello: {other:?}"),
        }
    }

    #[test]
    fn control_round_trip() {
        let message = Message::Exited(ExitStatus {
            code: Some(3),
            signal: None,
            timed_out: false,
        });
        let mut buf = encode(&message);
        assert_eq!(
            Frame::parse(&mut buf).unwrap(),
            Some(Frame::Control(message))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn data_round_trip_and_partial_input() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&Frame::data_header(Channel::Stdout, 5).unwrap());
        wire.extend_from_slice(b"hello");
        let full = wire.clone();
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(Frame::parse(&mut partial).unwrap(), None, "cut at {cut}");
            assert_eq!(
                partial.len(),
                cut,
                "nothing consumed from an incomplete frame"
            );
        }
        assert_eq!(
            Frame::parse(&mut wire).unwrap(),
            Some(Frame::Data(Channel::Stdout, Bytes::from_static(b"hello")))
        );
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1][..]);
        assert!(matches!(
            Frame::parse(&mut buf),
            Err(FrameError::TooLong { .. })
        ));
        assert!(Frame::data_header(Channel::FileData, MAX_FRAME_LEN + 1).is_err());
    }

    #[test]
    fn unknown_kind_is_refused() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 9][..]);
        assert!(matches!(
            Frame::parse(&mut buf),
            Err(FrameError::UnknownKind(9))
        ));
    }

    #[test]
    fn garbage_body_and_trailing_bytes_are_decode_errors() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 0, 0xff, 0xff][..]);
        assert!(matches!(Frame::parse(&mut buf), Err(FrameError::Decode(_))));
        let mut out = Vec::new();
        Frame::encode_control(&Message::StdinClose, &mut out).unwrap();
        out.push(0);
        out[3] += 1;
        let mut buf = BytesMut::from(&out[..]);
        assert!(matches!(Frame::parse(&mut buf), Err(FrameError::Decode(_))));
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_a_decode_error() {
        let message = Message::Error(ErrorFrame {
            code: ErrorCode::Io,
            message: "ab".into(),
        });
        let mut buf = encode(&message);
        let at = buf.iter().rposition(|&b| b == b'a').unwrap();
        buf[at] = 0xff;
        assert!(matches!(Frame::parse(&mut buf), Err(FrameError::Decode(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = Frame::parse(&mut buf) {}
        }

        #[test]
        fn arbitrary_control_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
            wire.extend_from_slice(&[0]);
            wire.extend_from_slice(&body);
            let _ = Frame::parse(&mut wire);
        }

        #[test]
        fn data_frames_round_trip(kind in 1u8..=4, body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let channel = Channel::from_kind(kind).unwrap();
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&Frame::data_header(channel, body.len()).unwrap());
            wire.extend_from_slice(&body);
            let frame = Frame::parse(&mut wire).unwrap().unwrap();
            prop_assert_eq!(frame, Frame::Data(channel, Bytes::from(body)));
        }
    }
}
