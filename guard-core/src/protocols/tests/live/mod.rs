//! Fixtures recorded live from real implementations: an `h2` crate client and server, python
//! `h2` (checked-in capture, for padding), tokio-tungstenite, and yawc (permessage-deflate)
//! over hyper. Each runs over an in-memory duplex pipe whose client end is taped, as the
//! uprobes see a client's `SSL_write`/`SSL_read` plaintext. The expected exchanges, usage
//! included, are stated exactly next to each scenario.

pub(crate) mod h2;
pub(crate) mod bodies;
pub(crate) mod ws;

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::events::Direction;

use super::{Fixture, Segment, Want};

/// What the client end of a connection wrote and read, in order.
#[derive(Clone, Default)]
pub(crate) struct Tape(Arc<Mutex<Vec<Segment>>>);

impl Tape {
    fn push(&self, dir: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut v = self.0.lock().unwrap();
        let ts = v.len() as u64 + 1;
        v.push(Segment { dir, ts, bytes: bytes.to_vec() });
    }

    /// How many segments so far (a place to cut a capture later).
    pub(crate) fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub(crate) fn take(&self) -> Vec<Segment> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A stream whose traffic goes on a [`Tape`]: writes as [`Direction::Write`], reads as `Read`.
pub(crate) struct Taped<S> {
    pub inner: S,
    pub tape: Tape,
}

impl<S: AsyncRead + Unpin> AsyncRead for Taped<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            self.tape.push(Direction::Read, &buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Taped<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.tape.push(Direction::Write, &buf[..*n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A gap marker: in [`super::run_pieces`] an empty segment stands for lost bytes.
pub(crate) fn gap(dir: Direction) -> Segment {
    Segment { dir, ts: 0, bytes: Vec::new() }
}

/// Every live fixture, recorded once per test process (the peers take a moment to run).
pub(crate) fn all() -> &'static [Fixture] {
    static ALL: OnceLock<Vec<Fixture>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v = h2::fixtures();
        v.extend(ws::fixtures());
        v
    })
}

/// Order-free comparison: concurrent streams finish in an order the scheduler picks.
pub(crate) fn sorted(mut w: Vec<Want>) -> Vec<Want> {
    w.sort_by_key(|x| format!("{x:?}"));
    w
}
