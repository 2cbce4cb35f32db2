//! A slow link on loopback: a TCP proxy that delays every byte by the same
//! time each way, as a distant machine's link would (without limiting its
//! bandwidth), so that agents can be put far from the NATS server.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;

/// A proxy to a server, adding `one_way` to every byte each way.
pub(crate) struct SlowLink {
    port: u16,
    stopped: Arc<AtomicBool>,
}

impl SlowLink {
    /// Listens on a free loopback port and forwards each connection to
    /// `target`, `one_way` late in each direction.
    pub(crate) fn start(target: SocketAddr, one_way: Duration) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let stopped = Arc::new(AtomicBool::new(false));
        let stopping = stopped.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_in, server_in) = (
                    client.try_clone().expect("a socket clones"),
                    server.try_clone().expect("a socket clones"),
                );
                pump(client_in, server, one_way);
                pump(server_in, client, one_way);
            }
        });
        SlowLink { port, stopped }
    }

    /// The URL of the server through the link, for NATS clients.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowLink {
    /// Takes no more connections (those open end with their ends).
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies what `from` reads to `to`, each piece `delay` after it was read,
/// in order; shuts `to` for writing when `from` ends.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = unbounded::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0; 64 << 10];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            if tx
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (due, bytes) in rx {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
