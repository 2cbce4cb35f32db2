//! The end that reads a worker's channel — the twin of
//! [`outbound`](super::outbound): a thread per worker that settles outcomes
//! and chunks given back on the worker's [`InFlight`], serves its host and
//! object calls' side of the traffic, hands guest output to the pool's
//! handler, and passes the rest to the slot as [`Event`]s.

use std::process::ChildStdout;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::Sender;

use crate::backend::calls::Asked;
use crate::backend::calls::objects::Invoke;
use crate::backend::local::Shared;
use crate::backend::local::event::Event;
use crate::backend::local::in_flight::InFlight;
use crate::backend::output::GuestOutput;
use crate::channel::io::FrameReader;
use crate::channel::{FromWorker, bounds};

/// Starts the thread that reads worker `pid`'s channel from `stdout`.
/// The reader ends with the channel; nothing joins it. Should it panic (in
/// the output handler, say), the slot hears of it as of a channel that
/// ended, rather than wait for it.
pub(crate) fn start(
    stdout: ChildStdout,
    pid: u32,
    in_flight: Arc<InFlight>,
    shared: Arc<Shared>,
    events: Sender<Event>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("wasmpool-reader-{pid}"))
        .spawn(move || {
            let reading = || read(stdout, pid, &in_flight, &shared, &events);
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(reading)).is_err() {
                let why = "the thread reading its channel panicked".to_string();
                let _ = events.send(Event::Closed(Some(why)));
            }
        })?;
    Ok(())
}

/// The reader of worker `pid`: settles outcomes and chunks given
/// back on `in_flight`, hands output to the pool's handler (before the
/// outcome of the task that wrote it), and passes everything else to the
/// slot on `events`, until the channel ends — or until the worker breaks
/// the protocol: a frame larger than a worker keeping the pool's limits
/// sends, or a name or message past the channel's bounds.
fn read(
    stdout: ChildStdout,
    pid: u32,
    in_flight: &InFlight,
    shared: &Shared,
    events: &Sender<Event>,
) {
    let mut reader = FrameReader::new(stdout, bounds::frame_limit(&shared.spawn.setup));
    loop {
        let message = match reader.read::<FromWorker>() {
            Ok(Some(message)) => match bounds::check(&message) {
                Ok(()) => Ok(Some(message)),
                Err(why) => Err(format!("it broke the protocol: it {why}")),
            },
            Ok(None) => Ok(None),
            Err(err) => Err(err.to_string()),
        };
        let settled = match message {
            Ok(Some(FromWorker::Output {
                index,
                stream,
                bytes,
                truncated,
            })) => {
                (shared.on_output)(&GuestOutput {
                    pid,
                    task_index: index,
                    stream,
                    bytes: bytes.into_vec(),
                    truncated,
                });
                Ok(())
            }
            Ok(Some(FromWorker::Outcomes {
                seq,
                first,
                outcomes,
            })) => in_flight.deliver(seq, first, outcomes, shared),
            Ok(Some(FromWorker::Withdrawn { seq })) => in_flight.given_back(seq, shared),
            Ok(Some(FromWorker::Invoke {
                call,
                index,
                object,
                op,
                args,
            })) => {
                match &shared.forward {
                    Some(forward) => {
                        let asked = Asked::Invoke { object, op, args };
                        in_flight.forward(forward.as_ref(), call, index, asked);
                    }
                    None => {
                        let invoke = Invoke {
                            call,
                            object,
                            op,
                            args,
                        };
                        in_flight.invoke(invoke, shared.max_payload);
                    }
                }
                Ok(())
            }
            Ok(Some(FromWorker::Request {
                call,
                index,
                name,
                args,
            })) if shared.forward.is_some() => {
                let forward = shared.forward.as_deref().expect("checked");
                in_flight.forward(forward, call, index, Asked::HostFn { name, args });
                Ok(())
            }
            Ok(Some(FromWorker::Cancel { call })) => {
                in_flight.cancel(call, shared);
                Ok(())
            }
            Ok(Some(FromWorker::Unclaimed { call, result })) => {
                in_flight.unclaimed(call, result, shared);
                Ok(())
            }
            Ok(Some(message)) => match events.send(Event::Message(message)) {
                Ok(()) => Ok(()),
                Err(_) => return,
            },
            Ok(None) => {
                let _ = events.send(Event::Closed(None));
                return;
            }
            Err(why) => Err(why),
        };
        if let Err(why) = settled {
            let _ = events.send(Event::Closed(Some(why)));
            return;
        }
    }
}
