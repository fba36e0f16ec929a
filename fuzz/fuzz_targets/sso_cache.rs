//! An SSO token file under `~/.aws/sso/cache`, written by the AWS CLI, an SDK or anyone.
#![no_main]

use credd_daemon::sources::aws::sso;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sso::parse_cache(data, std::path::Path::new("cache.json"));
});
