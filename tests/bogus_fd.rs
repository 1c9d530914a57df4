//! Registering a descriptor number that is not open (2,000,000,000) is an
//! error on every backend, answered without sizing anything by that number:
//! poll's fd → index table used to try an 8 GB allocation and abort.

#[macro_use]
mod common;

use reactor::{Backend, Error, Interest, Poller, Trigger};

/// Far above any real descriptor (the kernel's `nr_open` is about 1 M).
const BOGUS: i32 = 2_000_000_000;

fn registering_a_huge_closed_fd_is_an_error(backend: Backend) {
    let mut poller = common::new_poller(backend);
    let result = poller.register(BOGUS, 7, Interest::READABLE, Trigger::Level);
    match result {
        Err(Error::FdTooLarge { .. }) => assert_eq!(backend, Backend::Select, "{result:?}"),
        Err(Error::Sys { ref source, .. }) => {
            assert_eq!(
                source.raw_os_error(),
                Some(libc::EBADF),
                "[{backend}] {result:?}"
            )
        }
        other => panic!("[{backend}] register({BOGUS}) gave {other:?}"),
    }
    // The poller is still usable and empty afterwards.
    let (a, _b) = common::socket_pair();
    use std::os::fd::AsRawFd;
    poller
        .register(a.as_raw_fd(), 1, Interest::WRITABLE, Trigger::Level)
        .unwrap_or_else(|e| panic!("[{backend}] register after a refusal: {e}"));
    let event = common::expect_event(&mut poller, 1);
    assert!(event.is_writable(), "[{backend}] {event:?}");
}

backend_tests!(registering_a_huge_closed_fd_is_an_error);
