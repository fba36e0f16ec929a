//! A Google credential file (Application Default Credentials of any type). `$S` in the input
//! stands for a secret in the file (a private key, a refresh token): no error may quote it.
#![no_main]

use credd_daemon::sources::gcp::adc;
use libfuzzer_sys::fuzz_target;

/// Shaped like a base64 secret, with characters no identifier has.
const PLANTED: &str = "SeCrEt/4f2a+9c17e0=";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match adc::parse(&text.replace("$S", PLANTED)) {
        Ok(file) => {
            let _ = (file.type_name(), file.project(), file.quota_project());
        }
        Err(e) => assert!(!e.contains(PLANTED), "the error quotes the file: {e}"),
    }
});
