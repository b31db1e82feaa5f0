//! The server's edge: accepting connections and serving HTTP/1.1 on them with hyper directly, so
//! that slow and half-open clients cannot hold the gateway.
//!
//! - **Header timeout** (`server.header_read_timeout`): hyper closes a connection whose request
//!   headers have not all arrived that long after it opened or after its previous response. With
//!   part of a request received that is a slow client (`phase="header"`); with nothing received, a
//!   keep-alive connection nobody reused (`phase="idle"`, not logged).
//! - **Body timeout** (`server.body_read_timeout`): the chat handler's body read (`api/request.rs`).
//! - **Limits**: a connection beyond `server.max_connections` is served one 503 and closed; a
//!   request beyond `server.max_in_flight_requests` gets a 503.
//! - **Drain**: when shutdown begins, idle and half-sent connections are closed at once,
//!   connections with a request in flight close after their response, and the listener stays
//!   open, so that `/health/ready` answers 503 `draining` and new requests get a 503 the SDKs
//!   retry. The server returns as soon as no request is in flight (or at `server.drain_timeout`).
//!
//! `/health/*` and `/metrics` are never shed nor counted as in flight: probes and scrapes must see
//! the gateway as it is, and must not keep a draining process alive.

use crate::api::{self, AppState, Shed};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining,
    /// The server is done: every connection still open is dropped.
    Closed,
}

/// What every connection of one listener shares.
struct Shared {
    state: AppState,
    router: Router,
    /// Only the API listener counts requests toward the drain and the in-flight limit.
    counts: bool,
    open: AtomicUsize,
    in_flight: InFlight,
}

/// Requests being served now (health and metrics excepted), and a wake-up for the drain when the
/// count reaches zero.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Serves `listener` (and `metrics`, the `server.metrics.listen` listener) until `shutdown`
/// resolves, then drains; see the module documentation.
pub(super) async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> io::Result<()> {
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let api = Arc::new(Shared {
        router: api::router(state.clone()),
        state: state.clone(),
        counts: true,
        open: AtomicUsize::new(0),
        in_flight: InFlight::default(),
    });
    if let Some(m) = metrics {
        if let Ok(addr) = m.local_addr() {
            tracing::info!(addr = %addr, "metrics listening on {addr}");
        }
        let shared = Arc::new(Shared {
            router: api::metrics_router(state.clone()),
            state: state.clone(),
            counts: false,
            open: AtomicUsize::new(0),
            in_flight: InFlight::default(),
        });
        tokio::spawn(accept_loop(m, shared, phase_rx.clone()));
    }
    let accepting = accept_loop(listener, api.clone(), phase_rx);
    tokio::pin!(accepting);
    tokio::select! {
        () = &mut accepting => {}
        () = shutdown => {}
    }
    state.set_draining();
    let drain = state.gateway().config.server.drain_timeout.0;
    tracing::info!(
        drain_timeout_s = drain.as_secs_f64(),
        in_flight = api.in_flight.count.load(Ordering::SeqCst),
        "shutting down: draining in-flight requests, answering new ones 503"
    );
    let _ = phase_tx.send(Phase::Draining);
    let finished = async {
        tokio::select! {
            () = api.in_flight.drained() => true,
            () = tokio::time::sleep(drain) => false,
        }
    };
    // The listener keeps accepting while requests drain, so probes see the 503.
    let done = tokio::select! {
        done = finished => done,
        () = &mut accepting => true,
    };
    if done {
        tracing::info!("all requests finished; stopped");
    } else {
        tracing::warn!("drain timeout reached; closing the remaining connections");
    }
    let _ = phase_tx.send(Phase::Closed);
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Closed {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(tcp, peer, shared.clone(), phase.clone()));
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                // Out of file descriptors, usually: wait for connections to close.
                tracing::error!("cannot accept connections: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// How a connection is served, fixed when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Accepted while draining: one request, then closed.
    Draining,
    /// Over `server.max_connections`: one request (a 503 unless a probe), then closed.
    Overloaded,
}

/// One connection's state, shared by its socket wrapper and its requests.
#[derive(Default)]
struct ConnState {
    /// Requests of this connection being served (responses not yet fully sent).
    active: AtomicUsize,
    /// Bytes arrived since the last request began or the last response ended: tells a client that
    /// stalled mid-request from a keep-alive connection that was simply not reused.
    received: AtomicBool,
}

struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        if self.0.counts {
            self.0.state.metrics().edge.open_connections.dec();
        }
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) {
    // Marked seen, so that only a change after the accept is acted on below.
    let at_accept = *phase.borrow_and_update();
    let open = shared.open.fetch_add(1, Ordering::SeqCst);
    if shared.counts {
        shared.state.metrics().edge.open_connections.inc();
    }
    let _open = OpenGuard(shared.clone());
    let (header_timeout, max_connections) = {
        let gw = shared.state.gateway();
        let s = &gw.config.server;
        (s.header_read_timeout.0, s.max_connections)
    };
    let mode = if at_accept != Phase::Serving {
        Mode::Draining
    } else if shared.counts && open >= max_connections {
        Mode::Overloaded
    } else {
        Mode::Normal
    };
    let conn = Arc::new(ConnState::default());
    let io = TokioIo::new(Watched {
        tcp,
        conn: conn.clone(),
    });
    let svc = Svc {
        shared: shared.clone(),
        conn: conn.clone(),
        peer,
        mode,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(mode == Mode::Normal);
    let served = builder.serve_connection(io, svc);
    tokio::pin!(served);
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    report(&e, &conn, &shared, peer, header_timeout);
                }
                return;
            }
            changed = phase.changed() => {
                let now = if changed.is_err() { Phase::Closed } else { *phase.borrow() };
                match now {
                    Phase::Closed => return,
                    Phase::Draining if !closing => {
                        closing = true;
                        if conn.active.load(Ordering::SeqCst) == 0 {
                            // Idle, or part of a request that is not one yet: closed at once.
                            return;
                        }
                        served.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Counts and logs a connection hyper gave up on. Other connection errors (a client that reset
/// the connection, a malformed request, already answered 400 by hyper) are logged at debug.
fn report(
    e: &hyper::Error,
    conn: &ConnState,
    shared: &Shared,
    peer: SocketAddr,
    timeout: Duration,
) {
    if !e.is_timeout() {
        tracing::debug!(peer = %peer, "connection ended: {e}");
        return;
    }
    let timeouts = &shared.state.metrics().edge.client_timeouts;
    if conn.received.load(Ordering::SeqCst) {
        timeouts.with_label_values(&["header"]).inc();
        tracing::warn!(
            peer = %peer,
            phase = "header",
            timeout_s = timeout.as_secs_f64(),
            "closed a connection whose request headers did not arrive within server.header_read_timeout"
        );
    } else {
        timeouts.with_label_values(&["idle"]).inc();
        tracing::debug!(peer = %peer, "closed a connection that sent no request within server.header_read_timeout");
    }
}

/// The socket, noting when bytes arrive (see [`ConnState::received`]).
struct Watched {
    tcp: TcpStream,
    conn: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.received.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Probes and scrapes: never shed, never counted in flight.
fn exempt(path: &str) -> bool {
    matches!(path, "/health/live" | "/health/ready" | "/metrics")
}

/// The per-connection hyper service: admission (drain, limits), the peer address for the
/// handlers, then the axum router.
struct Svc {
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    peer: SocketAddr,
    mode: Mode,
}

impl Svc {
    /// `None` admits the request (and counts it in flight when the listener counts requests).
    fn admit(&self, path: &str) -> Result<Option<InFlightGuard>, Shed> {
        let s = &self.shared;
        if !s.counts || exempt(path) {
            return Ok(None);
        }
        if self.mode == Mode::Overloaded {
            return Err(Shed::ConnectionLimit);
        }
        if s.state.is_draining() || self.mode == Mode::Draining {
            return Err(Shed::Draining);
        }
        let limit = s.state.gateway_ref().config.server.max_in_flight_requests;
        let before = s.in_flight.count.fetch_add(1, Ordering::SeqCst);
        let guard = InFlightGuard(s.clone());
        if limit.is_some_and(|max| before >= max) {
            drop(guard);
            return Err(Shed::InFlightLimit);
        }
        Ok(Some(guard))
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Svc {
    type Response = http::Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.conn.active.fetch_add(1, Ordering::SeqCst);
        self.conn.received.store(false, Ordering::Relaxed);
        let active = ActiveGuard(self.conn.clone());
        let admitted = self.admit(req.uri().path());
        let in_flight = match admitted {
            Ok(g) => g,
            Err(reason) => {
                self.shared
                    .state
                    .metrics()
                    .edge
                    .shed
                    .with_label_values(&[reason.as_str()])
                    .inc();
                let resp = api::shed_response(reason, req.headers());
                return Box::pin(std::future::ready(Ok(resp.map(|body| Tracked {
                    body,
                    _active: active,
                    _in_flight: None,
                }))));
            }
        };
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.shared.router.clone();
        let fut = tower_service::Service::call(&mut router, req);
        Box::pin(async move {
            let resp = match fut.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(resp.map(|body| Tracked {
                body,
                _active: active,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Held by a request counted in flight until its response has been sent (or dropped).
struct InFlightGuard(Arc<Shared>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.in_flight.idle.notify_waiters();
        }
    }
}

struct ActiveGuard(Arc<ConnState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.received.store(false, Ordering::Relaxed);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that releases its request's guards once hyper has sent (or dropped) it, so a
/// stream counts as in flight until its last byte.
pub(super) struct Tracked {
    body: Body,
    _active: ActiveGuard,
    _in_flight: Option<InFlightGuard>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
