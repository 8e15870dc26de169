//! Repeated Content-Length headers in HTTP/1.1 request heads, which hyper
//! folds into one when the values agree (so the gateway could not see them):
//! each head is held back until complete, and every Content-Length after the
//! first is renamed [`REPEATED_CONTENT_LENGTH`] (same length, so nothing
//! shifts), which the normalize stage refuses (400). Bodies and HTTP/2 pass
//! through untouched.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a repeated `content-length` header is renamed to (14 bytes, as the original).
pub const REPEATED_CONTENT_LENGTH: &str = "x-repeated-len";
const CONTENT_LENGTH: &[u8] = b"content-length";
const _: () = assert!(REPEATED_CONTENT_LENGTH.len() == CONTENT_LENGTH.len());
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// A connection's reading side, seen through the check.
pub struct OneContentLength<S> {
    inner: S,
    /// Read from `inner`, not yet given to hyper; the first `ready` bytes may be.
    held: Vec<u8>,
    ready: usize,
    state: State,
    /// Past this many bytes without the end of a head, stop checking (hyper
    /// refuses a head that large itself).
    max_head: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Head,
    Body(u64),
    /// HTTP/2, chunked or otherwise unframed: bytes pass as they come.
    Off,
}

impl<S> OneContentLength<S> {
    pub fn new(inner: S, max_head: usize) -> Self {
        OneContentLength {
            inner,
            held: Vec::new(),
            ready: 0,
            state: State::Head,
            max_head,
        }
    }

    /// Moves what `held` allows from `Head`/`Body` to `ready`; false when
    /// more bytes must be read first.
    fn advance(&mut self) -> bool {
        let pending = self.held.len() - self.ready;
        if pending == 0 {
            return false;
        }
        match self.state {
            State::Off => self.ready = self.held.len(),
            State::Body(remaining) => {
                let n = (pending as u64).min(remaining);
                self.ready += n as usize;
                self.state = match remaining - n {
                    0 => State::Head,
                    left => State::Body(left),
                };
            }
            State::Head => {
                let head = &mut self.held[self.ready..];
                match head_end(head) {
                    Some(end) => {
                        self.state = check_head(&mut head[..end]);
                        self.ready += end;
                    }
                    None if pending > self.max_head => {
                        self.state = State::Off;
                        self.ready = self.held.len();
                    }
                    None => return false,
                }
            }
        }
        true
    }
}

/// The length of the head at the start of `bytes` (its blank line
/// included), if it is complete: up to the first `\r\n\r\n` or `\n\n`,
/// whichever ends first. Found from line end to line end (`memchr`), not
/// byte by byte: every request's head goes through here.
fn head_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find_map(|i| match bytes.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if i > 0 && bytes[i - 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') => {
            Some(i + 3)
        }
        _ => None,
    })
}

/// Renames repeated Content-Length headers in `head`; what follows it.
fn check_head(head: &mut [u8]) -> State {
    if head.starts_with(H2_PREFACE) {
        return State::Off;
    }
    let mut length = None;
    let mut unframed = false;
    let mut start = 0;
    while start < head.len() {
        let end = memchr::memchr(b'\n', &head[start..]).map_or(head.len(), |i| start + i + 1);
        let line = &mut head[start..end];
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = &line[..colon];
            if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
                if length.is_some() {
                    line[..colon].copy_from_slice(REPEATED_CONTENT_LENGTH.as_bytes());
                } else {
                    length = std::str::from_utf8(&line[colon + 1..])
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .or(Some(u64::MAX));
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"upgrade")
            {
                unframed = true;
            }
        }
        start = end;
    }
    match length {
        // hyper refuses these requests; what follows is not ours to frame.
        _ if unframed => State::Off,
        Some(u64::MAX) => State::Off,
        Some(0) | None => State::Head,
        Some(n) => State::Body(n),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for OneContentLength<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.held[..n]);
                this.held.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            // Uninitialized: zeroing 8 KiB on every poll cost more than the
            // rest of this reader (tokio's `ReadBuf` tracks what was filled).
            let mut chunk = [MaybeUninit::<u8>::uninit(); 8192];
            let mut read = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: what is held goes as it is (hyper sees a cut head).
                if this.held.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.state = State::Off;
                continue;
            }
            this.held.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for OneContentLength<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of a head is where the first blank line ends, by either
    /// line ending, as the byte-by-byte search for both patterns said.
    #[test]
    fn a_head_ends_at_its_first_blank_line() {
        let by_patterns = |bytes: &[u8]| {
            let crlf = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4);
            let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
            match (crlf, lf) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let heads: [&[u8]; 12] = [
            b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET /next",
            b"GET / HTTP/1.1\nhost: a\n\nbody",
            b"GET / HTTP/1.1\r\nhost: a\r\n",
            b"GET / HTTP/1.1\r\nhost: a\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\n\n",
            b"\n\n",
            b"\r\n\r\n",
            b"\n",
            b"\r\n\r",
            b"",
            b"a\r\n\r\n\n\n",
            b"a\n\r\n\r\n",
        ];
        for head in heads {
            assert_eq!(
                head_end(head),
                by_patterns(head),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn a_second_content_length_is_renamed() {
        let mut head =
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nhost: a\r\ncontent-length: 5\r\n\r\n"
                .to_vec();
        assert_eq!(check_head(&mut head), State::Body(5));
        let text = String::from_utf8(head).unwrap();
        assert_eq!(
            text.matches("Content-Length").count() + text.matches("content-length").count(),
            1
        );
        assert!(text.contains("x-repeated-len: 5\r\n"), "{text}");
        let mut chunked = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        assert_eq!(check_head(&mut chunked), State::Off);
    }
}
