//! Whether the component read a request's whole body. A component may answer without reading it (a refusal
//! before the body, by design); the connection then cannot carry another request, and the answer says so.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// A request body that notes when it has been read to its end.
pub struct Watched<B> {
    body: B,
    ended: Arc<AtomicBool>,
}

/// Says whether its [`Watched`] body was read to its end.
#[derive(Clone)]
pub struct BodyEnd(Arc<AtomicBool>);

impl BodyEnd {
    pub fn reached(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `body`, and what says whether it is read to its end.
pub fn watch<B: Body>(body: B) -> (Watched<B>, BodyEnd) {
    let ended = Arc::new(AtomicBool::new(body.is_end_stream()));
    let end = BodyEnd(ended.clone());
    (Watched { body, ended }, end)
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    #[tokio::test]
    async fn a_body_is_ended_once_read_to_its_end() {
        let (body, end) = watch(Full::new(Bytes::from_static(b"{}")));
        assert!(!end.reached());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
        assert!(end.reached());

        let (_, end) = watch(Empty::<Bytes>::new());
        assert!(end.reached(), "an empty body has nothing to read");
    }
}
