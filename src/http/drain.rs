//! Counts responses that are not fully written yet, so that a stop waits for exactly those.
//!
//! actix-web's own graceful stop waits for every open connection, idle keep-alive ones
//! included, so a provider or browser holding a pooled connection would hold every restart for
//! the whole shutdown timeout. Here a request counts from its arrival until its response body
//! has been written (the body is dropped then); idle connections do not count.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use tokio::sync::Notify;

/// The number of responses in flight, shared by every worker thread.
#[derive(Debug, Clone, Default)]
pub(super) struct InFlight {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    count: AtomicUsize,
    /// Woken each time the count drops to zero.
    idle: Notify,
}

/// Held by a response until its body is dropped.
pub(super) struct Guard {
    in_flight: InFlight,
}

/// A response body that keeps its request counted until it has been written or dropped.
pub(super) struct TrackedBody {
    body: BoxBody,
    _guard: Guard,
}

impl InFlight {
    pub(super) fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Completes when no response is in flight.
    pub(super) async fn drained(&self) {
        loop {
            // Created before the check: `notify_waiters` wakes futures from their creation on.
            let notified = self.shared.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn begin(&self) -> Guard {
        self.shared.count.fetch_add(1, Ordering::SeqCst);
        Guard { in_flight: self.clone() }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.in_flight.shared.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.in_flight.shared.idle.notify_waiters();
        }
    }
}

impl MessageBody for TrackedBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Middleware: counts the request until its response body is gone.
pub(super) async fn track_in_flight(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<TrackedBody>, actix_web::Error> {
    let guard = request.app_data::<Data<InFlight>>().map(|in_flight| in_flight.begin());
    let response = next.call(request).await?;
    Ok(response.map_body(move |_, body| TrackedBody {
        body: body.boxed(),
        _guard: guard.unwrap_or_else(|| InFlight::default().begin()),
    }))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::InFlight;

    /// Polls `future` once, without a runtime.
    fn is_ready(future: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        future.as_mut().poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn drained_waits_for_every_guard_to_drop() {
        let in_flight = InFlight::default();
        assert!(is_ready(&mut pin!(in_flight.drained())), "nothing in flight");

        let first = in_flight.begin();
        let second = in_flight.begin();
        let mut drained = pin!(in_flight.drained());
        assert!(!is_ready(&mut drained));
        drop(first);
        assert_eq!(in_flight.count(), 1);
        assert!(!is_ready(&mut drained));
        drop(second);
        assert!(is_ready(&mut drained), "the last guard wakes the waiter");
    }
}
