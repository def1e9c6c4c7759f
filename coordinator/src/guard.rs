//! The coordinator's listening socket, bounded: at most `max_connections` connections at once
//! (more are closed as they arrive), a new connection must send the whole HTTP/2 preface within
//! `handshake`, and a connection that sends nothing for `idle` is closed — so connections that
//! never authenticate, or stall half-way, cannot pile up.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// A connection under the limits: it holds one of the permits while open.
pub struct Guarded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
    /// Bytes received so far, counted up to the preface's length.
    received: usize,
}

/// The length of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE: usize = 24;

/// The accepted connections of `listener`, under `limits`. Connections beyond the cap are
/// accepted and closed at once, so they neither wait in the kernel's queue nor hold a descriptor.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl Stream<Item = std::io::Result<Guarded>> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    futures::stream::unfold((listener, permits), move |(listener, permits)| async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // A failed accept (out of descriptors, a reset before accept) is that
                // connection's problem, not the server's.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, limit = limits.max_connections, "too many connections; closing a new one");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let guarded = Guarded {
                stream,
                _permit: permit,
                deadline: Box::pin(tokio::time::sleep(limits.handshake)),
                idle: limits.idle,
                received: 0,
            };
            return Some((Ok(guarded), (listener, permits)));
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
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                // The handshake's deadline stands until the whole preface has arrived.
                self.received = (self.received + buf.filled().len() - before).min(PREFACE);
                if self.received == PREFACE {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connection was silent too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
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
