//! Frames: a little-endian `u32` length, then that many bytes of a
//! postcard-encoded message. Pure: it turns messages into bytes and bytes
//! into messages, does no I/O, and never allocates more than the limit it is
//! given for a length read off the wire.

use serde::{Deserialize, Serialize};

/// Bytes of the length prefix of a frame.
pub(crate) const HEADER_LEN: usize = 4;

/// The largest frame either side accepts.
pub(crate) const FRAME_LIMIT: usize = 1 << 30;

/// A frame that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Appends `message` as one frame to `out`.
pub(crate) fn encode<M: Serialize>(message: &M, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Writing into a Vec cannot fail, and every message type serialises.
    *out = postcard::to_extend(message, std::mem::take(out)).expect("message encodes");
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
}

/// Reads a frame header: how many bytes of body follow.
pub(crate) fn decode_header(header: [u8; HEADER_LEN], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

/// Decodes a frame body.
pub(crate) fn decode_body<'de, M: Deserialize<'de>>(body: &'de [u8]) -> Result<M, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|err| FrameError::Malformed(err.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} bytes left over after the message",
            rest.len()
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::channel::{Batch, Failure, FromWorker, Outcomes, Stream, ToWorker};
    use crate::error::{Error, ErrorKind};

    /// Round-trips `message` through a frame that starts after other bytes.
    fn through_a_frame<M>(message: &M) -> M
    where
        M: Serialize + for<'de> Deserialize<'de>,
    {
        let mut frame = vec![0xAA];
        encode(message, &mut frame);
        let len = decode_header(frame[1..1 + HEADER_LEN].try_into().unwrap(), usize::MAX).unwrap();
        assert_eq!(len, frame.len() - 1 - HEADER_LEN);
        decode_body(&frame[1 + HEADER_LEN..]).unwrap()
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..200)
    }

    /// Any message a pool sends.
    fn to_worker() -> impl Strategy<Value = ToWorker> {
        prop_oneof![
            (
                any::<u64>(),
                "[a-z_]{1,12}",
                any::<u64>(),
                bytes(),
                proptest::collection::vec(any::<u32>(), 0..20)
            )
                .prop_map(|(seq, task, first_index, args, ends)| ToWorker::Run(
                    Batch {
                        seq,
                        task,
                        first_index,
                        args: ByteBuf::from(args),
                        handed: ends.iter().map(|&end| (u64::from(end), seq)).collect(),
                        ends,
                    }
                )),
            any::<u64>().prop_map(|seq| ToWorker::Withdraw { seq }),
            (
                any::<u64>(),
                prop_oneof![
                    bytes().prop_map(|b| Ok(ByteBuf::from(b))),
                    ".{0,30}".prop_map(|why| Err(Failure::Refused(why))),
                    Just(Err(Failure::TimedOut)),
                    ".{0,30}".prop_map(|why| Err(Failure::Closed(why))),
                ]
            )
                .prop_map(|(call, result)| ToWorker::Reply { call, result }),
            Just(ToWorker::Shutdown),
        ]
    }

    /// Any message a worker sends after its handshake.
    fn from_worker() -> impl Strategy<Value = FromWorker> {
        let outcomes = proptest::collection::vec(
            prop_oneof![bytes().prop_map(Ok), ".{0,20}".prop_map(Err)],
            0..20,
        )
        .prop_map(|items| {
            let mut outcomes = Outcomes::default();
            for item in items {
                match item {
                    Ok(bytes) => outcomes.push_ok(&bytes),
                    Err(message) => outcomes.push_err(Error::new(ErrorKind::Failed, message)),
                }
            }
            outcomes
        });
        prop_oneof![
            (any::<u64>(), any::<u32>(), outcomes).prop_map(|(seq, first, outcomes)| {
                FromWorker::Outcomes {
                    seq,
                    first,
                    outcomes,
                }
            }),
            any::<u64>().prop_map(|seq| FromWorker::Withdrawn { seq }),
            (any::<u64>(), any::<u64>(), "[a-z_]{1,12}", bytes()).prop_map(
                |(call, index, name, args)| {
                    FromWorker::Request {
                        call,
                        index,
                        name,
                        args: ByteBuf::from(args),
                    }
                }
            ),
            (any::<u64>(), any::<bool>(), bytes(), any::<bool>()).prop_map(
                |(index, out, bytes, truncated)| {
                    FromWorker::Output {
                        index,
                        stream: if out { Stream::Stdout } else { Stream::Stderr },
                        bytes: ByteBuf::from(bytes),
                        truncated,
                    }
                }
            ),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                "[a-z-]{1,12}",
                bytes()
            )
                .prop_map(|(call, index, object, op, args)| FromWorker::Invoke {
                    call,
                    index,
                    object,
                    op,
                    args: ByteBuf::from(args),
                }),
            any::<u64>().prop_map(|call| FromWorker::Cancel { call }),
            (any::<u64>(), bytes()).prop_map(|(call, result)| FromWorker::Unclaimed {
                call,
                result: ByteBuf::from(result),
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_to_a_worker_survives_a_frame(message in to_worker()) {
            prop_assert_eq!(through_a_frame(&message), message);
        }

        #[test]
        fn every_message_from_a_worker_survives_a_frame(message in from_worker()) {
            prop_assert_eq!(through_a_frame(&message), message);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_body::<FromWorker>(&body);
            let _ = decode_body::<ToWorker>(&body);
        }

        #[test]
        fn a_cut_frame_never_decodes(message in from_worker(), cut in 1usize..8) {
            let mut frame = Vec::new();
            encode(&message, &mut frame);
            let body = &frame[HEADER_LEN..];
            let cut = cut.min(body.len());
            prop_assert!(decode_body::<FromWorker>(&body[..body.len() - cut]).is_err());
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_any_allocation() {
        assert_eq!(
            decode_header(u32::MAX.to_le_bytes(), 1 << 20),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                limit: 1 << 20
            })
        );
        assert_eq!(decode_header(7u32.to_le_bytes(), 7), Ok(7));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut frame = Vec::new();
        encode(&FromWorker::Withdrawn { seq: 3 }, &mut frame);
        frame.push(0);
        assert!(matches!(
            decode_body::<FromWorker>(&frame[HEADER_LEN..]),
            Err(FrameError::Malformed(_))
        ));
    }
}
