//! Serving HTTP connections: at most `http.max_connections` at once, and
//! clients that are too slow are cut off — headers that do not arrive
//! within `http.header_timeout_s`, a body not complete within
//! `http.body_timeout_s` (408), a kept-alive connection idle for
//! `http.idle_timeout_s`. A connection upgraded to a WebSocket leaves
//! these rules; the WebSocket keeps its own (see `push::ws`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::{Service, ServiceExt};

use super::AppState;
use super::error::ApiError;
use crate::config::HttpSettings;

/// Accepts connections while fewer than the cap are open; past it, new
/// connections wait in the kernel's queue until one closes.
pub struct ConnListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    settings: HttpSettings,
    last_full_log: Option<Instant>,
}

impl ConnListener {
    pub fn new(inner: TcpListener, settings: HttpSettings) -> ConnListener {
        ConnListener {
            inner,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            last_full_log: None,
        }
    }

    async fn slot(&mut self) -> OwnedSemaphorePermit {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return p;
        }
        let now = Instant::now();
        if self
            .last_full_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            self.last_full_log = Some(now);
            tracing::warn!(
                max_connections = self.settings.max_connections,
                "connection limit reached: {} connections open; new connections wait until one closes",
                self.settings.max_connections
            );
        }
        match self.slots.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }
}

impl axum::serve::Listener for ConnListener {
    type Io = ConnIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ConnIo, SocketAddr) {
        let permit = self.slot().await;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (ConnIo::new(stream, &self.settings, permit), addr);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => {
                    // Out of file descriptors (EMFILE) and the like: wait for
                    // connections to close instead of retrying in a busy loop.
                    tracing::error!("accept error: {e}; retrying in {} ms", backoff.as_millis());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// What a connection is doing, shared by its socket and its requests.
struct ConnState {
    born: Instant,
    /// Milliseconds after `born` of the last byte read or written.
    last_activity: AtomicU64,
    /// Milliseconds after `born` (plus one) of a request's first byte; 0: none.
    head_started: AtomicU64,
    in_request: AtomicUsize,
    upgraded: AtomicBool,
    /// The task that last found nothing to read or write: woken when a
    /// request ends, so that the socket is polled again and the idle
    /// deadline armed (a read left pending during the request armed none,
    /// or a header deadline that no longer applies).
    reader: std::sync::Mutex<Option<std::task::Waker>>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_activity.store(now, Ordering::Relaxed);
        if self.in_request.load(Ordering::Acquire) == 0 {
            let _ =
                self.head_started
                    .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// When the connection is to be closed if nothing happens; `None` while
    /// a request is being handled or after an upgrade.
    fn deadline(&self) -> Option<Instant> {
        if self.upgraded.load(Ordering::Acquire) || self.in_request.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            0 => Some(
                self.born
                    + Duration::from_millis(self.last_activity.load(Ordering::Relaxed))
                    + self.idle_timeout,
            ),
            started => Some(self.born + Duration::from_millis(started - 1) + self.header_timeout),
        }
    }
}

/// A client socket that holds a connection slot and fails reads and writes
/// that wait past the connection's deadline.
pub struct ConnIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl ConnIo {
    fn new(inner: TcpStream, settings: &HttpSettings, slot: OwnedSemaphorePermit) -> ConnIo {
        ConnIo {
            inner,
            state: Arc::new(ConnState {
                born: Instant::now(),
                last_activity: AtomicU64::new(0),
                head_started: AtomicU64::new(0),
                in_request: AtomicUsize::new(0),
                upgraded: AtomicBool::new(false),
                reader: std::sync::Mutex::new(None),
                header_timeout: settings.header_timeout,
                idle_timeout: settings.idle_timeout,
            }),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            _slot: slot,
        }
    }

    /// `Ready(err)` when the deadline has passed, else arms the timer.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.state.upgraded.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        {
            let mut reader = self.state.reader.lock().unwrap_or_else(|e| e.into_inner());
            if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *reader = Some(cx.waker().clone());
            }
        }
        let Some(deadline) = self.state.deadline() else {
            return Poll::Pending;
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let what = if self.state.head_started.load(Ordering::Acquire) == 0 {
                    "idle"
                } else {
                    "slow request headers"
                };
                tracing::debug!("closing an HTTP connection: {what}");
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection closed: {what}"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.on_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let now = this.state.now_ms();
                    this.state.last_activity.store(now, Ordering::Relaxed);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A client that stops reading a response is idle too.
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let now = this.state.now_ms();
                    this.state.last_activity.store(now, Ordering::Relaxed);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.check_deadline(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Makes one [`ConnService`] per accepted connection.
#[derive(Clone)]
pub struct MakeConnService {
    router: Router,
}

impl MakeConnService {
    pub fn new(router: Router) -> MakeConnService {
        MakeConnService { router }
    }
}

impl<'a> Service<IncomingStream<'a, ConnListener>> for MakeConnService {
    type Response = ConnService;
    type Error = Infallible;
    type Future = std::future::Ready<Result<ConnService, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: IncomingStream<'a, ConnListener>) -> Self::Future {
        std::future::ready(Ok(ConnService {
            router: self.router.clone(),
            state: incoming.io().state.clone(),
            addr: *incoming.remote_addr(),
        }))
    }
}

/// The router for one connection: tells the connection when a request is
/// being handled (no idle or header deadline then) and when it upgraded.
#[derive(Clone)]
pub struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    addr: SocketAddr,
}

struct InRequest(Arc<ConnState>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.last_activity.store(now, Ordering::Relaxed);
        self.0.in_request.fetch_sub(1, Ordering::AcqRel);
        let waker = self
            .0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Service<Request> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        self.state.in_request.fetch_add(1, Ordering::AcqRel);
        self.state.head_started.store(0, Ordering::Release);
        let guard = InRequest(self.state.clone());
        req.extensions_mut().insert(ConnectInfo(self.addr));
        let router = self.router.clone();
        Box::pin(async move {
            let resp = router.oneshot(req).await.into_response();
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                guard.0.upgraded.store(true, Ordering::Release);
            }
            drop(guard);
            Ok(resp)
        })
    }
}

/// A request body that fails once `http.body_timeout_s` has passed since
/// the headers arrived; the request is then answered 408.
struct DeadlineBody {
    inner: Body,
    timer: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: bounds the time a request's body may take to arrive.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let limit = state.config.http.body_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            timer: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        })
    });
    let resp = next.run(req).await;
    if !expired.load(Ordering::Acquire) {
        return resp;
    }
    let mut resp = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {:.1} s",
            limit.as_secs_f64()
        ),
    )
    .into_response();
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}
