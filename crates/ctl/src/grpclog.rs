//! gRPC's connection log as `etcdctl --debug` shows it on stderr (grpc-go's logger at
//! verbosity 4: `INFO: 2026/11/21 13:09:22 [core]Channel Connectivity change to READY`),
//! for the connection events retcdctl itself goes through: the keep-alive interval raised to
//! gRPC's minimum, each endpoint dialed (`Subchannel picks a new address`), each failed
//! attempt (`grpc: addrConn.createTransport failed to connect to {...}. Err: ...`) and the
//! states of the attempt (subchannel) and of the client (channel). gRPC's internals that
//! retcdctl has no counterpart for (resolver and balancer updates, transport closes) are not
//! printed.
//!
//! Off until a client's configuration is made with `--debug` (etcdctl sets its gRPC logger
//! there, then it logs for every client of the process; `endpoint health` never makes one).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::gofmt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the log on for the rest of the process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn line(level: &str, msg: &str) {
    if ENABLED.load(Ordering::Relaxed) {
        eprintln!("{level}: {} [core]{msg}", gofmt::golog_now());
    }
}

/// A connectivity state, named as gRPC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Ready,
    TransientFailure,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Ready => "READY",
            State::TransientFailure => "TRANSIENT_FAILURE",
        }
    }
}

/// The client's (channel's) state changed.
pub fn channel(state: State) {
    line(
        "INFO",
        &format!("Channel Connectivity change to {}", state.name()),
    );
}

/// An attempt's (subchannel's) state changed.
pub fn subchannel(state: State) {
    line(
        "INFO",
        &format!("Subchannel Connectivity change to {}", state.name()),
    );
}

/// An attempt starts dialing `addr`.
pub fn picks(addr: &str) {
    line(
        "INFO",
        &format!(
            "Subchannel picks a new address {} to connect",
            gofmt::quote(addr.as_bytes())
        ),
    );
}

/// An attempt to `addr` failed with `err` (gRPC's connection error); `authority` is the
/// client's (its first endpoint, or the endpoint dialed directly).
pub fn transport_failed(addr: &str, authority: &str, err: &str) {
    line(
        "WARNING",
        &format!(
            "grpc: addrConn.createTransport failed to connect to {{{addr} {authority} <nil> 0 <nil>}}. Err: {err}. Reconnecting..."
        ),
    );
}

/// `--keepalive-time` below gRPC's minimum was raised to it.
pub fn keepalive_adjusted(min: std::time::Duration) {
    line(
        "WARNING",
        &format!(
            "Adjusting keepalive ping interval to minimum period of {}",
            gofmt::duration(min)
        ),
    );
}
