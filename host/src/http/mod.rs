//! The HTTP side, generic over components: it knows no route, API or header of any app. A request is routed
//! (`router`), answered from the shared HTTP cache when it may be (`cache`), else admitted or refused
//! (`admission`) and run in a fresh instance (`guest`), answered by the host
//! when the component cannot (`answers`), and logged and counted (`request_log`); `server` accepts
//! connections and drains them on shutdown.

mod admission;
mod answers;
mod cache;
mod guest;
mod request_log;
mod router;
mod server;
pub mod timer;

pub use admission::{Admission, AdmissionLimits};
pub use answers::AnswerStyle;
pub use cache::HttpCache;
pub use guest::{start_epoch_ticker, RequestLimits, ServedComponent};
pub use router::Router;
pub use server::serve;
