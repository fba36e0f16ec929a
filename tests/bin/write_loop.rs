//! A helper for the crash test: rewrites one file with credd's atomic writer as fast as it can,
//! forever, each time with a new generation number and enough padding that a write takes a
//! while. The test kills it at random moments and checks what is left on disk.

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: write-loop PATH"));
    let padding = "x".repeat(256 * 1024);
    for generation in 0u64.. {
        let contents = serde_json::json!({ "generation": generation, "padding": padding });
        credd_daemon::files::write_private(&path, contents.to_string().as_bytes(), false)
            .expect("write");
    }
}
