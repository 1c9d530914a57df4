//! Timers under `Reactor::poll`, on every backend: a timer wakes a blocked
//! poll no earlier than its deadline, cancelled timers never fire, and
//! expiries come out in deadline order.

#[macro_use]
mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use reactor::{Backend, Events, Reactor, Token};

fn reactor(backend: Backend) -> Reactor<UnixStream> {
    Reactor::with_backend(backend).unwrap()
}

/// Polls until `want` timers have fired or `limit` passes; returns them.
fn collect_expired(r: &mut Reactor<UnixStream>, want: usize, limit: Duration) -> Vec<Token> {
    let deadline = Instant::now() + limit;
    let mut events = Events::with_capacity(8);
    let mut fired = Vec::new();
    while fired.len() < want && Instant::now() < deadline {
        r.poll(
            &mut events,
            Some(deadline.saturating_duration_since(Instant::now())),
        )
        .unwrap();
        while let Some((_, token)) = r.next_expired() {
            fired.push(token);
        }
    }
    fired
}

fn a_30ms_timer_fires_after_30ms_and_before_the_io_timeout(backend: Backend) {
    let mut r = reactor(backend);
    let start = Instant::now();
    r.timer_after(Duration::from_millis(30), Token::from_key(1));
    let mut events = Events::with_capacity(8);
    r.poll(&mut events, Some(Duration::from_secs(1))).unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(30),
        "[{backend}] woke early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(900),
        "[{backend}] slept through the timer: {elapsed:?}"
    );
    assert_eq!(
        r.next_expired().map(|(_, t)| t),
        Some(Token::from_key(1)),
        "[{backend}]"
    );
    assert_eq!(r.next_expired(), None, "[{backend}]");
}

fn cancelled_timers_never_fire(backend: Backend) {
    let mut r = reactor(backend);
    let doomed = r.timer_after(Duration::from_millis(20), Token::from_key(1));
    r.timer_after(Duration::from_millis(60), Token::from_key(2));
    assert!(r.cancel_timer(doomed), "[{backend}]");
    assert!(!r.cancel_timer(doomed), "[{backend}] cancelled twice");
    let fired = collect_expired(&mut r, 1, Duration::from_secs(2));
    assert_eq!(fired, [Token::from_key(2)], "[{backend}]");
    // Nothing else fires later either.
    let more = collect_expired(&mut r, 1, Duration::from_millis(100));
    assert!(more.is_empty(), "[{backend}] {more:?}");
}

fn timers_expire_in_deadline_order(backend: Backend) {
    let mut r = reactor(backend);
    let now = Instant::now();
    for (key, ms) in [(3, 45), (1, 15), (2, 30), (4, 45)] {
        r.timer_at(now + Duration::from_millis(ms), Token::from_key(key));
    }
    let fired = collect_expired(&mut r, 4, Duration::from_secs(2));
    let keys: Vec<usize> = fired.iter().map(|t| t.key()).collect();
    assert_eq!(
        keys,
        [1, 2, 3, 4],
        "[{backend}] equal deadlines keep insertion order"
    );
}

fn a_reset_timer_fires_at_its_new_deadline(backend: Backend) {
    let mut r = reactor(backend);
    let start = Instant::now();
    let id = r.timer_after(Duration::from_millis(10), Token::from_key(9));
    assert!(r.reset_timer(id, start + Duration::from_millis(80)));
    let fired = collect_expired(&mut r, 1, Duration::from_secs(2));
    assert_eq!(fired, [Token::from_key(9)], "[{backend}]");
    assert!(
        start.elapsed() >= Duration::from_millis(80),
        "[{backend}] fired at the old deadline"
    );
}

fn an_idle_loop_with_a_far_timer_does_not_spin(backend: Backend) {
    let mut r = reactor(backend);
    r.timer_after(Duration::from_secs(3600), Token::from_key(1));
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        r.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
    }
    assert!(
        r.iterations() <= 6,
        "[{backend}] {} polls in 200 ms",
        r.iterations()
    );
}

backend_tests!(
    a_30ms_timer_fires_after_30ms_and_before_the_io_timeout,
    cancelled_timers_never_fire,
    timers_expire_in_deadline_order,
    a_reset_timer_fires_at_its_new_deadline,
    an_idle_loop_with_a_far_timer_does_not_spin,
);
