//! The config file, as a person (or an editor mid-save) leaves it.
#![no_main]

use credd_daemon::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = config::parse(std::path::Path::new("config.toml"), text)
    {
        // The error points into the file.
        assert!(e.line <= text.lines().count() + 1);
    }
});
