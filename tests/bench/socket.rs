//! One request over the daemon's socket, framed as `credd` frames it, without the `credd` process.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use credd_proto::frame;

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
