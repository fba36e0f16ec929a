//! A Google credential file (Application Default Credentials of any type).
#![no_main]

use credd_daemon::sources::gcp::adc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(file) = adc::parse(text)
    {
        let _ = (file.type_name(), file.project(), file.quota_project());
    }
});
