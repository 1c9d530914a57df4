//! The members of the room: who is logged in, in join order, and which
//! names (by collision key) are taken.
//!
//! The course's design keeps a dictionary `{name: address}` and sends each
//! message to every address but the sender's. Here a member is a [`Token`]
//! (the connection's place in the `Reactor`), so the room never holds a
//! socket: sending goes through the reactor, which knows whether the
//! connection still exists. A name is freed in the same step that removes
//! the member, whatever ended the connection (`/quit`, end of file, reset,
//! too slow), so no "ghost" keeps a name.

use std::collections::HashMap;

use reactor::Token;

use super::names::Name;

/// One logged-in member.
#[derive(Debug)]
struct Member {
    token: Token,
    name: Name,
}

/// Who is online.
#[derive(Debug, Default)]
pub struct Room {
    /// Members in the order they joined: `/who` and the welcome line list
    /// them in this order.
    members: Vec<Member>,
    /// Collision key → member.
    taken: HashMap<String, Token>,
}

impl Room {
    /// Whether a member already uses a name with this key.
    pub fn is_taken(&self, key: &str) -> bool {
        self.taken.contains_key(key)
    }

    /// Adds a member; the caller checked [`is_taken`](Room::is_taken).
    pub fn join(&mut self, token: Token, name: Name) {
        self.taken.insert(name.key.clone(), token);
        self.members.push(Member { token, name });
    }

    /// Removes a member and frees its name; its display name, or `None` if
    /// `token` was not a member.
    pub fn leave(&mut self, token: Token) -> Option<String> {
        let at = self.members.iter().position(|m| m.token == token)?;
        let Member { name, .. } = self.members.remove(at);
        self.taken.remove(&name.key);
        Some(name.display)
    }

    /// A member's display name.
    pub fn name(&self, token: Token) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.token == token)
            .map(|m| m.name.display.as_str())
    }

    /// Display names in join order.
    pub fn names(&self) -> Vec<&str> {
        self.members
            .iter()
            .map(|m| m.name.display.as_str())
            .collect()
    }

    /// Members' tokens in join order.
    pub fn tokens(&self) -> impl Iterator<Item = Token> + '_ {
        self.members.iter().map(|m| m.token)
    }
}
