//! Event sources: things that are not sockets but become readable
//! descriptors, so one `poll` waits for them with everything else.
//!
//! - `signal.rs`: [`Signals`], SIGINT/SIGTERM/SIGCHLD through a self-pipe.
//! - `child.rs`: [`Pidfd`], [`Reaper`] and [`reap_exited`]: children that
//!   exit become events, and zombies are reaped.
//! - `waker.rs`: [`Waker`], an eventfd another thread writes to wake `poll`.
//! - `accept.rs`: [`Acceptor`], `accept` that survives running out of
//!   descriptors (`EMFILE`) without spinning.

mod accept;
mod child;
mod signal;
mod signum;
mod waker;

pub use accept::{Accepted, Acceptor};
pub use child::{ChildMode, ExitStatus, Pidfd, Reaper, reap_exited};
pub use signal::{Signals, signal_name};
pub use signum::Signal;
pub use waker::Waker;
