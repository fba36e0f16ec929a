//! What an `exec` source's command prints on stdout.
#![no_main]

use std::time::{Duration, SystemTime};

use credd_daemon::sources::exec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(fetched) = exec::parse_output(data, now, Duration::from_secs(3600)) {
        assert!(fetched.expires_at > SystemTime::UNIX_EPOCH);
    }
});
