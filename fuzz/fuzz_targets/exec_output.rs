//! What an `exec` source's command prints on stdout. `$S` in the input stands for a secret
//! the command printed: no error may quote it, and a bare token is served exactly as printed.
#![no_main]

use std::time::{Duration, SystemTime};

use credd_daemon::sources::exec;
use libfuzzer_sys::fuzz_target;

/// Shaped like a base64 secret, with characters no identifier has.
const PLANTED: &str = "SeCrEt/4f2a+9c17e0=";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let printed = text.replace("$S", PLANTED);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    match exec::parse_output(printed.as_bytes(), now, Duration::from_secs(3600)) {
        Ok(fetched) => {
            let values = fetched.secret.secret_values();
            assert!(
                values.iter().all(|v| !v.is_empty()),
                "an empty secret was accepted"
            );
            let trimmed = printed.trim();
            if !trimmed.starts_with('{') {
                assert_eq!(values, vec![trimmed], "a bare token is served as printed");
                assert_eq!(fetched.expires_at, now + Duration::from_secs(3600));
            }
        }
        Err(e) => assert!(!e.contains(PLANTED), "the error quotes the output: {e}"),
    }
});
