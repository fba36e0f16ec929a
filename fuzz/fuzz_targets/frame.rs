//! The socket's frames: a length prefix, then a JSON request (what any local process can send
//! the daemon) or response (what the client reads).
#![no_main]

use credd_proto::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..4) {
        let _ = frame::body_len(header.try_into().unwrap());
    }
    let _ = frame::read_frame(&mut &data[..]);
    if let Ok(request) = frame::decode_request(data) {
        // What decodes must encode again and decode to the same request.
        let again = frame::encode_request(request.clone());
        assert_eq!(frame::decode_request(&again[4..]).unwrap(), request);
    }
    let _ = frame::decode_response(data);
});
