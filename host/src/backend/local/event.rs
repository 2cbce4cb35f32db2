//! [`Event`]: what a worker's channel tells its slot, from the thread that
//! reads it ([`inbound`](super::inbound)), the end that writes to it
//! ([`outbound`](super::outbound), of a broken pipe) and its work in flight.

use crate::channel::FromWorker;

/// What the reader thread reports to the slot. (Outcomes and chunks given
/// back it settles itself, on the worker's
/// [`InFlight`](super::in_flight::InFlight).)
pub(crate) enum Event {
    Message(FromWorker),
    /// The worker finished or gave back work while the slot waited for that.
    Progress,
    /// The channel ended: the worker exited or broke the protocol.
    Closed(Option<String>),
}
