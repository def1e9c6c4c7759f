//! The coordinator's listening sockets, bounded: at most `max_connections` connections at once,
//! a new connection must send the whole HTTP/2 preface (or its first 24 bytes of HTTP/1) within
//! `handshake`, and a connection that sends nothing for `idle` is closed. When the cap is reached
//! a new connection is served and the one silent longest is closed instead, so connections held
//! open by anyone cannot keep a probe, an operator or a worker renewing its lease out.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The network limits of a coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// From accepting a connection to the end of its HTTP/2 preface.
    pub handshake: Duration,
    /// Longest silence of a connection (a lease request waits at most 30 s for a job).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(120),
        }
    }
}

/// One open connection as the cap sees it.
struct Slot {
    /// When it last sent bytes (or opened), in milliseconds since the listener started.
    last_heard_ms: AtomicU64,
    /// Closed to make room for a newer connection.
    evicted: AtomicBool,
    /// Wakes its reader when it is evicted.
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }
}

/// The open connections of one listener.
struct Open {
    started: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl Open {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Makes room for one more connection under `cap`: the connection silent longest is
    /// closed when the cap is reached. Returns the new connection's slot.
    fn admit(&self, cap: usize) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let open: Vec<&Arc<Slot>> = slots
            .iter()
            .filter(|slot| !slot.evicted.load(Ordering::Acquire))
            .collect();
        if open.len() >= cap
            && let Some(quietest) = open
                .iter()
                .min_by_key(|slot| slot.last_heard_ms.load(Ordering::Relaxed))
        {
            tracing::warn!(
                limit = cap,
                "too many connections; closing the one silent longest"
            );
            quietest.evict();
        }
        let slot = Arc::new(Slot {
            last_heard_ms: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        slots.push(slot.clone());
        slot
    }

    fn close(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|other| !Arc::ptr_eq(other, slot));
    }
}

/// A connection under the limits.
pub struct Guarded {
    stream: TcpStream,
    slot: Arc<Slot>,
    open: Arc<Open>,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
    /// Bytes received so far, counted up to the preface's length.
    received: usize,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.open.close(&self.slot);
    }
}

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE: usize = 24;

/// The accepted connections of `listener`, under `limits`.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl Stream<Item = std::io::Result<Guarded>> {
    let open = Arc::new(Open {
        started: Instant::now(),
        slots: Mutex::new(Vec::new()),
    });
    futures::stream::unfold((listener, open), move |(listener, open)| async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // A failed accept (out of descriptors, a reset before accept) is that
                // connection's problem, not the server's.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let guarded = Guarded {
                stream,
                slot: open.admit(limits.max_connections),
                open: open.clone(),
                deadline: Box::pin(tokio::time::sleep(limits.handshake)),
                idle: limits.idle,
                received: 0,
            };
            return Some((Ok(guarded), (listener, open)));
        }
    })
}

impl Guarded {
    /// The address of the other end.
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.slot.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "closed for a newer connection: the connection cap was reached",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let now = self.open.now_ms();
                self.slot.last_heard_ms.store(now, Ordering::Relaxed);
                // The handshake's deadline stands until the whole preface has arrived.
                self.received = (self.received + buf.filled().len() - before).min(PREFACE);
                if self.received == PREFACE {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                *self.slot.waker.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(cx.waker().clone());
                if self.slot.evicted.load(Ordering::Acquire) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the connection was silent too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
