//! What the select and poll backends both keep about their registrations,
//! written once: which fds are registered under which key and trigger, the
//! "already registered" / "not registered" checks, and the fair scan that
//! turns the kernel's answer into [`Events`].
//!
//! The kernel keeps nothing for these two system calls (unlike epoll), so
//! user space must: a dense list of entries, one per registration, and an
//! `fd → index` table to find an entry by its descriptor. `remove` swaps the
//! last entry into the hole (O(1)); poll keeps its `pollfd` array parallel to
//! the entries and swaps the same way.

use std::os::fd::RawFd;

use crate::error::{Error, Result};
use crate::poller::{Events, Trigger};
use crate::sys;

/// One registration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// The descriptor.
    pub(crate) fd: RawFd,
    /// Given back in every event.
    pub(crate) key: usize,
    /// Level or oneshot (edge is refused before an entry is made).
    pub(crate) trigger: Trigger,
    /// False after a oneshot report or once the fd was found closed: the
    /// kernel is no longer asked about it until `modify` re-arms it.
    pub(crate) armed: bool,
}

/// No entry for this fd.
const NONE: u32 = u32::MAX;

/// The registrations of one select or poll backend.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Dense, in no particular order.
    entries: Vec<Entry>,
    /// fd number → index in `entries`, or `NONE`; fd numbers are small, so a
    /// `Vec` beats a hash map.
    by_fd: Vec<u32>,
    /// Where the next scan starts, so a full `Events` buffer does not starve
    /// the entries after it.
    next_scan: usize,
}

impl Table {
    /// The entries, in index order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Index of `fd`'s entry, if registered.
    pub(crate) fn find(&self, fd: RawFd) -> Option<usize> {
        match self.by_fd.get(usize::try_from(fd).ok()?) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    /// Adds an armed entry and returns its index (always the last).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFd`] for a negative fd, [`Error::AlreadyRegistered`].
    pub(crate) fn insert(
        &mut self,
        backend: &'static str,
        fd: RawFd,
        key: usize,
        trigger: Trigger,
    ) -> Result<usize> {
        sys::check_fd(fd)?;
        if self.find(fd).is_some() {
            return Err(Error::AlreadyRegistered { backend, fd });
        }
        let slot = fd as usize;
        if self.by_fd.len() <= slot {
            // The table grows to the fd number: only for an open descriptor.
            sys::check_open(fd)?;
            self.by_fd.resize(slot + 1, NONE);
        }
        let index = self.entries.len();
        self.by_fd[slot] = index as u32;
        self.entries.push(Entry {
            fd,
            key,
            trigger,
            armed: true,
        });
        Ok(index)
    }

    /// Gives `fd`'s entry a new key and trigger, re-arms it, and returns its
    /// index.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFd`] for a negative fd, [`Error::NotRegistered`].
    pub(crate) fn update(
        &mut self,
        backend: &'static str,
        fd: RawFd,
        key: usize,
        trigger: Trigger,
    ) -> Result<usize> {
        let index = self.index_of(backend, fd)?;
        self.entries[index] = Entry {
            fd,
            key,
            trigger,
            armed: true,
        };
        Ok(index)
    }

    /// Removes `fd`'s entry and returns the index it had: the caller moves
    /// its own last element there too (`Vec::swap_remove`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFd`] for a negative fd, [`Error::NotRegistered`].
    pub(crate) fn remove(&mut self, backend: &'static str, fd: RawFd) -> Result<usize> {
        let index = self.index_of(backend, fd)?;
        self.by_fd[fd as usize] = NONE;
        self.entries.swap_remove(index);
        // The last entry moved into the hole: point its fd at the new place.
        if let Some(moved) = self.entries.get(index) {
            self.by_fd[moved.fd as usize] = index as u32;
        }
        Ok(index)
    }

    /// Marks the entry at `index` as no longer watched.
    pub(crate) fn disarm(&mut self, index: usize) {
        self.entries[index].armed = false;
    }

    fn index_of(&self, backend: &'static str, fd: RawFd) -> Result<usize> {
        sys::check_fd(fd)?;
        self.find(fd).ok_or(Error::NotRegistered { backend, fd })
    }

    /// Fills `events` from the kernel's answer: `ready(index, entry)` returns
    /// the entry's epoll bits (0: not ready) and may disarm what must not
    /// fire again (a disarmed entry is out of the kernel's sets, so it
    /// answers 0). Entries are visited once each, starting where the last
    /// full buffer stopped and wrapping around; the scan ends early after
    /// `at_most` events (what the system call said were ready) or when
    /// `events` is full.
    pub(crate) fn scan(
        &mut self,
        events: &mut Events,
        mut at_most: usize,
        mut ready: impl FnMut(usize, &mut Entry) -> u32,
    ) {
        let len = self.entries.len();
        if at_most == 0 || len == 0 {
            return;
        }
        let mut i = if self.next_scan < len {
            self.next_scan
        } else {
            0
        };
        for _ in 0..len {
            let entry = &mut self.entries[i];
            let bits = ready(i, entry);
            // Wraps by comparison, not `%`: no division per descriptor.
            i += 1;
            if i == len {
                i = 0;
            }
            if bits != 0 {
                events.push_bits(entry.key, bits);
                at_most -= 1;
                if events.is_full() {
                    self.next_scan = i;
                    return;
                }
                if at_most == 0 {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real descriptors: a number that is not open is refused.
    fn open_fds(n: usize) -> (Vec<std::os::unix::net::UnixStream>, Vec<RawFd>) {
        use std::os::fd::AsRawFd;
        let pairs: Vec<_> = (0..n)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap().0)
            .collect();
        let fds = pairs.iter().map(|s| s.as_raw_fd()).collect();
        (pairs, fds)
    }

    #[test]
    fn remove_keeps_the_index_of_the_moved_entry() {
        let (_keep, fds) = open_fds(3);
        let [a, b, c] = [fds[0], fds[1], fds[2]];
        let mut t = Table::default();
        for fd in [a, b, c] {
            t.insert("poll", fd, fd as usize, Trigger::Level).unwrap();
        }
        assert_eq!(t.remove("poll", a).unwrap(), 0);
        assert_eq!(t.find(c), Some(0));
        assert_eq!(t.find(b), Some(1));
        assert_eq!(t.find(a), None);
        t.remove("poll", c).unwrap();
        assert_eq!(t.find(b), Some(0));
        assert!(matches!(
            t.remove("poll", c),
            Err(Error::NotRegistered { .. })
        ));
        assert!(matches!(
            t.insert("poll", b, 0, Trigger::Level),
            Err(Error::AlreadyRegistered { .. })
        ));
    }

    #[test]
    fn a_full_buffer_resumes_where_it_stopped() {
        let (_keep, fds) = open_fds(5);
        let mut t = Table::default();
        for (i, &fd) in fds.iter().enumerate() {
            t.insert("poll", fd, i, Trigger::Level).unwrap();
        }
        let mut events = Events::with_capacity(2);
        let mut seen = Vec::new();
        for _ in 0..3 {
            events.clear();
            t.scan(&mut events, usize::MAX, |_, _| {
                crate::poller::event::bits::IN
            });
            seen.extend(events.iter().map(|e| e.key()));
        }
        assert_eq!(seen, [0, 1, 2, 3, 4, 0]);
    }
}
