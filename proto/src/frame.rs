//! Framing: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! The length is checked against [`MAX_FRAME_LEN`] before a single body byte is read, so an
//! oversized or hostile frame costs the reader nothing. Blocking helpers serve the client; the
//! daemon reads the header and body itself and calls [`body_len`] and the `decode_*` functions.

use std::io::{Read, Write};

use serde::Serialize;

use crate::{PROTOCOL_VERSION, Request, RequestFrame, Response, ResponseFrame};

/// The largest frame body either side accepts. Requests are tiny; a status report with many
/// sources stays far below this.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("protocol version {theirs} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { theirs: u32 },
    /// The daemon refused our frame because it speaks protocol `theirs`; `message` is its
    /// explanation.
    #[error("{message}")]
    VersionRefused { theirs: u32, message: String },
    #[error("connection closed before a whole frame arrived")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The body length announced by a frame header, checked against the limit.
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME_LEN => Err(FrameError::TooLarge(n)),
        n => Ok(n),
    }
}

/// A message serialized with its header, ready to write in one call.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("protocol messages always serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn encode_request(request: Request) -> Vec<u8> {
    encode(&RequestFrame {
        version: PROTOCOL_VERSION,
        request,
    })
}

pub fn encode_response(response: Response) -> Vec<u8> {
    encode(&ResponseFrame {
        version: PROTOCOL_VERSION,
        response,
    })
}

/// Just the version of a frame, for when the rest does not parse.
#[derive(serde::Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Explains why a frame did not parse: another protocol version, or plain malformed.
fn parse_failure(body: &[u8], error: serde_json::Error) -> FrameError {
    match serde_json::from_slice::<VersionOnly>(body) {
        Ok(v) if v.version != PROTOCOL_VERSION => {
            FrameError::UnsupportedVersion { theirs: v.version }
        }
        _ => FrameError::Malformed(error.to_string()),
    }
}

/// A stop request in the shape every protocol version keeps (see [`PROTOCOL_VERSION`]).
#[derive(serde::Deserialize)]
struct StopOnly {
    request: StopOp,
}

#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum StopOp {
    Stop,
}

/// Decodes a request; a stop is understood whatever version sent it.
pub fn decode_request(body: &[u8]) -> Result<Request, FrameError> {
    let refused = match serde_json::from_slice::<RequestFrame>(body) {
        Ok(frame) if frame.version == PROTOCOL_VERSION => return Ok(frame.request),
        Ok(frame) => FrameError::UnsupportedVersion {
            theirs: frame.version,
        },
        Err(e) => parse_failure(body, e),
    };
    match (&refused, serde_json::from_slice::<StopOnly>(body)) {
        (
            FrameError::UnsupportedVersion { .. },
            Ok(StopOnly {
                request: StopOp::Stop,
            }),
        ) => Ok(Request::Stop),
        _ => Err(refused),
    }
}

pub fn decode_response(body: &[u8]) -> Result<Response, FrameError> {
    match serde_json::from_slice::<ResponseFrame>(body) {
        Ok(frame) if frame.version == PROTOCOL_VERSION => Ok(frame.response),
        // An error reply is readable whatever version sent it, so a version mismatch is
        // explained in the daemon's own words, with the version it speaks.
        Ok(ResponseFrame {
            version,
            response: Response::Error(e),
        }) if e.kind == crate::ErrorKind::UnsupportedVersion => Err(FrameError::VersionRefused {
            theirs: version,
            message: e.message,
        }),
        Ok(ResponseFrame {
            response: error @ Response::Error(_),
            ..
        }) => Ok(error),
        Ok(frame) => Err(FrameError::UnsupportedVersion {
            theirs: frame.version,
        }),
        Err(e) => Err(parse_failure(body, e)),
    }
}

/// Reads one frame body (blocking).
pub fn read_frame(reader: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    read_exact(reader, &mut header)?;
    let mut body = vec![0u8; body_len(header)?];
    read_exact(reader, &mut body)?;
    Ok(body)
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), FrameError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })
}

/// Writes one request and reads the answer (blocking).
pub fn round_trip(
    stream: &mut (impl Read + Write),
    request: Request,
) -> Result<Response, FrameError> {
    let sent = stream
        .write_all(&encode_request(request))
        .and_then(|()| stream.flush());
    // A peer that refuses us answers and closes without reading; its answer says why.
    match (sent, read_frame(stream)) {
        (_, Ok(body)) => decode_response(&body),
        (Err(e), Err(_)) => Err(FrameError::Io(e)),
        (Ok(()), Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn request_round_trips() {
        let req = Request::Get {
            source: "gateway".into(),
            min_valid_secs: Some(600),
            caller: None,
            audience: None,
        };
        let bytes = encode_request(req.clone());
        let body = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(decode_request(&body).unwrap(), req);
    }

    #[test]
    fn oversized_header_is_refused_before_reading_the_body() {
        let header = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(body_len(header), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn zero_length_frame_is_an_error() {
        assert!(matches!(body_len([0; 4]), Err(FrameError::Empty)));
    }

    #[test]
    fn other_version_is_named() {
        let body = br#"{"version":99,"request":{"op":"status"}}"#;
        assert!(matches!(
            decode_request(body),
            Err(FrameError::UnsupportedVersion { theirs: 99 })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            decode_request(b"\x00\xffnot json"),
            Err(FrameError::Malformed(_))
        ));
        let unknown_op = format!(r#"{{"version":{PROTOCOL_VERSION},"request":{{"op":"fly"}}}}"#);
        assert!(matches!(
            decode_request(unknown_op.as_bytes()),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_frame_is_reported() {
        let mut bytes = encode_request(Request::Status);
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(
            read_frame(&mut &bytes[..]),
            Err(FrameError::Truncated)
        ));
    }

    #[test]
    fn error_reply_from_another_version_is_still_readable() {
        let body =
            br#"{"version":99,"response":{"result":"error","kind":"internal","message":"boom"}}"#;
        match decode_response(body).unwrap() {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::Internal),
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    #[test]
    fn version_refusal_names_the_daemons_version() {
        let body = br#"{"version":99,"response":{"result":"error","kind":"unsupported_version","message":"speak 99"}}"#;
        match decode_response(body) {
            Err(FrameError::VersionRefused {
                theirs: 99,
                message,
            }) => {
                assert_eq!(message, "speak 99")
            }
            other => panic!("expected a version refusal, got {other:?}"),
        }
    }

    #[test]
    fn stop_is_understood_from_any_version() {
        for body in [
            &br#"{"version":99,"request":{"op":"stop"}}"#[..],
            br#"{"version":0,"request":{"op":"stop","why":"upgrade"}}"#,
        ] {
            assert_eq!(decode_request(body).unwrap(), Request::Stop);
        }
        // Only a stop: anything else of another version is still refused.
        assert!(matches!(
            decode_request(br#"{"version":99,"request":{"op":"get"}}"#),
            Err(FrameError::UnsupportedVersion { theirs: 99 })
        ));
        // And a malformed frame of our own version is not taken for a stop.
        let broken_stop =
            format!(r#"{{"version":{PROTOCOL_VERSION},"request":{{"op":"stop","extra":[}}}}"#);
        assert!(matches!(
            decode_request(broken_stop.as_bytes()),
            Err(FrameError::Malformed(_))
        ));
    }
}
