//! retcdctl's errors and etcdctl's exit codes. Every failure ends as one `Error: ...` line
//! on stderr and the exit code etcdctl uses for that class of failure.

use tonic::{Code, Status};

/// etcdctl's exit codes (`ctlv3/command/error.go`).
pub mod exit {
    pub const ERROR: i32 = 1;
    pub const BAD_CONNECTION: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const BAD_FEATURE: i32 = 4;
    pub const INTERRUPTED: i32 = 5;
    pub const BAD_ARGS: i32 = 128;
}

/// A failure of a retcdctl command.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Wrong number or shape of arguments (exit 128).
    #[error("{0}")]
    BadArgs(String),
    /// Malformed input read from stdin, e.g. a txn (exit 3).
    #[error("{0}")]
    InvalidInput(String),
    /// An output format or feature the command does not support (exit 4).
    #[error("{0}")]
    BadFeature(String),
    /// Could not set up the client, e.g. authentication failed (exit 2).
    #[error("{0}")]
    BadConnection(String),
    /// The server (or the client-side deadline) answered with an error (exit 1).
    #[error("{}", status_message(.0))]
    Rpc(Status),
    /// The watch or another stream was cancelled (exit 5).
    #[error("{0}")]
    Interrupted(String),
    /// Any other failure (exit 1).
    #[error("{0}")]
    Other(String),
}

impl CtlError {
    /// The process exit code etcdctl uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::BadArgs(_) => exit::BAD_ARGS,
            CtlError::InvalidInput(_) => exit::INVALID_INPUT,
            CtlError::BadFeature(_) => exit::BAD_FEATURE,
            CtlError::BadConnection(_) => exit::BAD_CONNECTION,
            CtlError::Interrupted(_) => exit::INTERRUPTED,
            CtlError::Rpc(_) | CtlError::Other(_) => exit::ERROR,
        }
    }

    /// `<format> not supported as output format`.
    pub fn unsupported(format: &str) -> Self {
        CtlError::BadFeature(format!("{format} not supported as output format"))
    }

    /// Whether this error means no endpoint could be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, CtlError::Rpc(s) if s.code() == Code::DeadlineExceeded || s.code() == Code::Unavailable)
    }
}

impl From<Status> for CtlError {
    fn from(s: Status) -> Self {
        CtlError::Rpc(s)
    }
}

/// Go gRPC's name of a status code (`codes.Code.String()`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The error as Go's gRPC prints it: `rpc error: code = NotFound desc = ...`.
pub fn grpc_string(s: &Status) -> String {
    format!("rpc error: code = {} desc = {}", code_name(s.code()), s.message())
}

/// What clientv3 makes of a status: etcd's own errors (`etcdserver: ...`) print as their
/// message alone, client-side deadlines as `context deadline exceeded`, the rest in gRPC's form.
pub fn status_message(s: &Status) -> String {
    let msg = s.message();
    if msg.starts_with("etcdserver: ") || msg == "context deadline exceeded" || msg == "context canceled" {
        msg.to_string()
    } else {
        grpc_string(s)
    }
}

/// A client-side deadline expiry, as clientv3 reports it.
pub fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_print_bare() {
        let e = CtlError::from(Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(e.to_string(), "etcdserver: requested lease not found");
        assert_eq!(e.exit_code(), 1);
        let e = CtlError::from(Status::unavailable("boom"));
        assert_eq!(e.to_string(), "rpc error: code = Unavailable desc = boom");
        assert_eq!(
            CtlError::from(deadline_exceeded()).to_string(),
            "context deadline exceeded"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CtlError::BadArgs(String::new()).exit_code(), 128);
        assert_eq!(
            CtlError::unsupported("table").to_string(),
            "table not supported as output format"
        );
        assert_eq!(CtlError::unsupported("table").exit_code(), 4);
    }
}
