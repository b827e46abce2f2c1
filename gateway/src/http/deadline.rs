//! Deadlines on one API connection's stream, whatever it is (TCP, or TLS over it): a client
//! that trickles a request head, stays silent too long between requests, or stops reading
//! its answer is cut off. Request bodies have their own bound in `body.rs`, where an answer
//! (408) is still possible.
//!
//! hyper's own `header_read_timeout` starts as soon as it waits for a head, so it cannot tell
//! a client idle between requests from one sending a head slowly: one timeout would serve
//! both. Here the two are told apart by whether a request is in flight ([`Activity`]) and
//! whether the next head has begun (its first byte read).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

/// The time a client is given for each thing it must do.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// To send a request's head, from its first byte (or from the connection, for the first).
    pub header: Duration,
    /// To start the next request on a keep-alive connection; to read more of an answer.
    pub idle: Duration,
}

/// The deadline a client missed, for which its connection was cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    Head = 1,
    Idle = 2,
    Write = 3,
}

impl Missed {
    /// The metric label and log text.
    pub fn label(self) -> &'static str {
        match self {
            Missed::Head => "header_timeout",
            Missed::Idle => "idle_timeout",
            Missed::Write => "write_timeout",
        }
    }

    fn from_u8(v: u8) -> Option<Missed> {
        [Missed::Head, Missed::Idle, Missed::Write]
            .into_iter()
            .find(|c| *c as u8 == v)
    }
}

/// What the service tells the stream: whether a request is in flight (from its head parsed
/// to its answer sent); and what the stream tells the server: the deadline, if any, for which
/// it cut the connection.
#[derive(Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// The connection's task, woken when a request ends so that the idle deadline starts
    /// even if hyper polled the stream last while the request was in flight.
    reader: AtomicWaker,
    missed: AtomicU8,
}

impl Activity {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// The deadline for which the stream cut the connection, if it did.
    pub fn missed(&self) -> Option<Missed> {
        Missed::from_u8(self.missed.load(Ordering::Acquire))
    }
}

/// A request in flight; dropped with its answer's body, once sent or abandoned.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.reader.wake();
    }
}

/// What the read side waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// A request is in flight: its body is read on the handler's terms (`body.rs`).
    Nothing,
    /// The first byte of the next request, within `idle`.
    NextRequest,
    /// The rest of a head begun, within `header` of its first byte.
    Head,
}

/// A stream that fails a read or write with `TimedOut` once its deadline passes.
pub struct Timed<S> {
    inner: S,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    waiting: Waiting,
    read_by: Pin<Box<Sleep>>,
    /// Made at the first write that cannot proceed (the client is not reading), and armed
    /// again at each.
    write_by: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
}

impl<S> Timed<S> {
    /// A freshly accepted connection: its first head is due within `deadlines.header`.
    pub fn new(inner: S, activity: Arc<Activity>, deadlines: Deadlines) -> Timed<S> {
        Timed {
            inner,
            activity,
            deadlines,
            waiting: Waiting::Head,
            read_by: Box::pin(sleep(deadlines.header)),
            write_by: None,
            write_stalled: false,
        }
    }

    fn cut(&self, why: Missed) -> io::Error {
        self.activity.missed.store(why as u8, Ordering::Release);
        io::Error::new(io::ErrorKind::TimedOut, why.label())
    }

    fn wait_for(&mut self, what: Waiting, within: Duration) {
        self.waiting = what;
        self.read_by.as_mut().reset(Instant::now() + within);
    }

    /// Passes a write's outcome on, timing how long the client leaves it pending.
    fn stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write_stalled = false;
            return polled;
        }
        let due = Instant::now() + self.deadlines.idle;
        let by = self
            .write_by
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if !self.write_stalled {
            self.write_stalled = true;
            by.as_mut().reset(due);
        }
        match by.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(self.cut(Missed::Write))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.activity.reader.register(cx.waker());
        if this.activity.busy() {
            this.waiting = Waiting::Nothing;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.waiting == Waiting::Nothing {
            this.wait_for(Waiting::NextRequest, this.deadlines.idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.waiting == Waiting::NextRequest && buf.filled().len() > before {
                    this.wait_for(Waiting::Head, this.deadlines.header);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.read_by.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(this.cut(match this.waiting {
                    Waiting::NextRequest => Missed::Idle,
                    _ => Missed::Head,
                }))),
                Poll::Pending => Poll::Pending,
            },
            failed => failed,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stalled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.stalled(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.stalled(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const D: Deadlines = Deadlines {
        header: Duration::from_secs(2),
        idle: Duration::from_secs(10),
    };

    fn timed(
        activity: &Arc<Activity>,
    ) -> (Timed<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(64);
        (Timed::new(server, activity.clone(), D), client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_past_its_deadline_is_cut() {
        let activity = Arc::new(Activity::default());
        let (mut server, mut client) = timed(&activity);
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                if let Err(e) = server.read(&mut buf).await {
                    return e;
                }
            }
        });
        let started = Instant::now();
        for b in b"GET /ping HTTP/1.1\r\n" {
            if client.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let e = reading.await.unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(activity.missed(), Some(Missed::Head));
        assert!(started.elapsed() <= D.header + Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_idle_deadline_then_a_head_the_header_deadline() {
        let activity = Arc::new(Activity::default());
        let (mut server, mut client) = timed(&activity);
        // A first request arrives and is in flight for longer than either deadline.
        let head = b"GET / HTTP/1.1\r\n\r\n";
        client.write_all(head).await.unwrap();
        server.read_exact(&mut vec![0u8; head.len()]).await.unwrap();
        let request = activity.begin();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let started = Instant::now();
            let e = loop {
                match server.read(&mut buf).await {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            (e, started.elapsed())
        });
        tokio::time::sleep(D.idle * 2).await;
        assert!(!reading.is_finished(), "cut while a request was in flight");
        // Answered: silence is allowed for `idle`, not `header`.
        drop(request);
        let answered = Instant::now();
        tokio::time::sleep(D.header * 2).await;
        assert!(
            !reading.is_finished(),
            "an idle connection cut at the header deadline"
        );
        // The next head begins and stalls: cut `header` after its first byte.
        client.write_all(b"G").await.unwrap();
        let (e, _) = reading.await.unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(activity.missed(), Some(Missed::Head));
        let total = answered.elapsed();
        assert!(total >= D.header * 3 && total <= D.header * 3 + Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_keep_alive_connection_is_cut_at_the_idle_deadline() {
        let activity = Arc::new(Activity::default());
        let (mut server, _client) = timed(&activity);
        let request = activity.begin();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            server.read(&mut buf).await.unwrap_err()
        });
        tokio::time::sleep(D.header).await;
        drop(request);
        let answered = Instant::now();
        let e = reading.await.unwrap();
        assert_eq!(activity.missed(), Some(Missed::Idle), "{e}");
        assert_eq!(answered.elapsed().as_secs(), D.idle.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_reading_slowly_but_steadily_is_not_cut() {
        let activity = Arc::new(Activity::default());
        let (mut server, mut client) = timed(&activity);
        let reading = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            while got < 1024 {
                tokio::time::sleep(D.idle / 2).await;
                got += client.read(&mut buf).await.unwrap();
            }
        });
        server.write_all(&[0u8; 1024]).await.unwrap();
        reading.await.unwrap();
        assert_eq!(activity.missed(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_its_answer_is_cut() {
        let activity = Arc::new(Activity::default());
        let (mut server, _client) = timed(&activity);
        let started = Instant::now();
        let e = server.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(activity.missed(), Some(Missed::Write));
        assert_eq!(started.elapsed().as_secs(), D.idle.as_secs());
    }
}
