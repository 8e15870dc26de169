//! A lingering close, as nginx's `lingering_close`: when a connection is
//! closed while its client is still sending (an answer written before the
//! request was read to its end: a body or a head too large), the write side
//! is shut first and what still arrives is read and dropped for a moment.
//! Otherwise the client, still writing, meets a reset and never reads the
//! answer that was sent it (413, 431, 400).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest a closing connection is drained.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most a closing connection reads and drops.
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A connection's stream, closed lingering.
pub struct Lingering<S> {
    inner: S,
    state: Close,
}

enum Close {
    Open,
    /// The write side is shut; reading until the client stops sending.
    Draining {
        deadline: Pin<Box<tokio::time::Sleep>>,
        dropped: usize,
    },
    Closed,
}

impl<S> Lingering<S> {
    pub fn new(inner: S) -> Self {
        Lingering {
            inner,
            state: Close::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                Close::Open => {
                    std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.state = Close::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        dropped: 0,
                    };
                }
                Close::Draining { deadline, dropped } => {
                    if deadline.as_mut().poll(cx).is_ready() || *dropped >= LINGER_BYTES {
                        this.state = Close::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Pending => return Poll::Pending,
                        // The client is done (or gone): closed.
                        Poll::Ready(Err(_)) => this.state = Close::Closed,
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            this.state = Close::Closed
                        }
                        Poll::Ready(Ok(())) => *dropped += buf.filled().len(),
                    }
                }
                Close::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
