//! The map: [`Reactor<T>`](Reactor), the course's `fdmap = {fd: sock}` done
//! right, over any [`Poller`](crate::Poller).
//!
//! - `reactor.rs`: `insert` / `get` / `modify` / `remove` / `poll`, and
//!   the reactor's waker.
//! - `slots.rs`: the slab of objects, whose vacant entries keep the next
//!   generation, and the descriptor table.
//! - `token.rs`: [`Token`], the generation-checked key every event carries.
//! - `timers.rs`: deadlines that wake `poll` and report a token.

mod reactor;
pub(crate) mod slots;
mod timers;
mod token;

pub use reactor::{InsertError, Reactor};
pub use token::Token;
