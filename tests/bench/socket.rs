//! One request over the daemon's socket, framed as `credd` frames it, without the `credd` process.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use credd_proto::{Request, frame};

pub fn one_request(socket: &Path, request: &[u8]) -> std::io::Result<()> {
    one_credential(socket, request).map(|_| ())
}

pub fn one_credential(socket: &Path, request: &[u8]) -> std::io::Result<credd_proto::Credential> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(request)?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = frame::body_len(header).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    match frame::decode_response(&body).map_err(std::io::Error::other)? {
        credd_proto::Response::Credential(credential) => Ok(credential),
        other => Err(std::io::Error::other(format!("{other:?}"))),
    }
}

/// The frame of a `get` for `source`, valid at least `min_valid_secs`, as a plain caller sends it.
pub fn get_frame(source: &str, min_valid_secs: u64) -> Vec<u8> {
    frame::encode_request(Request::Get {
        source: source.into(),
        min_valid_secs: Some(min_valid_secs),
        caller: None,
        audience: None,
    })
}
