//! Why a command failed: what it means for the caller (the exit code, one of
//! [`credd_proto::exit::Exit`]) and the one line the person reads. Every failure the client
//! meets becomes one here, the daemon's reported errors through one mapping
//! ([`Failure::from_daemon`]), so code that decides on a failure matches on its meaning.

use credd_proto::ErrorKind;
pub use credd_proto::exit::Exit;

#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// A usage error, or a credential that cannot be printed as asked.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }

    /// An error the daemon reported.
    pub fn from_daemon(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure::new(kind.exit(), message)
    }
}
