//! The HTTP side, generic over components and units: it knows no route, API or header of any app, and no unit.
//! A request is routed (`router`), offered to the units' layers (`layer`: answered at once, refused, or let
//! through), run in a fresh instance (`guest`), answered by the host when the component cannot (`answers`,
//! shaped by the manifest's `config`), and logged (`request_log`); `server` accepts connections and drains them
//! on shutdown.

mod answers;
pub mod config;
mod guest;
pub mod headers;
pub mod host_answers;
mod in_flight;
mod layer;
mod read_to_end;
mod request_log;
mod router;
mod server;

use std::time::Duration;

pub use answers::AnswerStyle;
pub use guest::{start_epoch_ticker, RequestLimits, ServedComponent};
pub use layer::{AfterCall, Answered, BoxFuture, Guard, HostResponse, Layer, Refusal};
pub use router::Router;
pub use server::serve;

/// How long a client may take to send a request's head before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
