//! The chat room's lines, written in one place, and the cleaning
//! of message text so that no client can forge one of them.
//!
//! Every line the server sends ends with `\n`. Server lines start with `* `
//! (news), `! ` (an error, to one client only) or `[admin] `; members' lines
//! start with the sender's name and `: `. A member can never produce any of
//! the others: the server writes the `name: ` prefix itself, a message is
//! one line (the newline that ended it is not part of it), and control
//! characters that could move the cursor or reorder the text (`\r`, ESC,
//! the C1 controls, bidi overrides…) are removed before the text is sent on.
//!
//! | course (Python) | here |
//! |---|---|
//! | `"\n%s 进入了聊天室" % name` | [`joined`] |
//! | `"%s : %s" % (name, text)` | [`message`] |
//! | `"\n%s 退出了聊天室" % name` | [`left`] |
//! | `"管理员消息: " + text` | [`admin`] |

use std::rc::Rc;

/// A line to send, encoded once and shared by every queue it goes into.
pub type Bytes = Rc<[u8]>;

/// Builds a line from its text, adding the `\n`.
fn line(text: String) -> Bytes {
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    bytes.into()
}

/// The first line a new connection gets: asks for a name.
pub fn prompt() -> Bytes {
    line("* enter your name".to_owned())
}

/// Most names the welcome and `/who` lines list; the rest are counted
/// (`… and 9950 more`), so these lines stay a few KiB in any room.
pub const ROSTER_NAMES: usize = 50;

/// Longest name in bytes: 32 characters of at most 4 bytes.
const NAME_BYTES: usize = 32 * 4;

/// The longest line the server may send to one client, for clients whose
/// lines are at most `max_line` bytes: a message (`name: text`, where each
/// invalid byte of the text may become a 3-byte U+FFFD), or the welcome
/// with a full roster. A `--max-queue` smaller than this could not hold
/// one line, and every member would be dropped as too slow by it.
pub fn longest_line(max_line: usize) -> usize {
    let message = NAME_BYTES + ": ".len() + 3 * max_line + 1;
    let roster = "* welcome , online: ".len()
        + NAME_BYTES
        + ROSTER_NAMES * (NAME_BYTES + ", ".len())
        + "… and 18446744073709551615 more\n".len();
    message.max(roster)
}

/// `n1, n2, …`: the first [`ROSTER_NAMES`] names, then how many more.
fn roster(online: &[&str]) -> String {
    let shown = online.len().min(ROSTER_NAMES);
    let mut text = online[..shown].join(", ");
    if online.len() > shown {
        text.push_str(&format!(", … and {} more", online.len() - shown));
    }
    text
}

/// To a client that just logged in: its name and who is online (it
/// included), the first [`ROSTER_NAMES`] of them.
pub fn welcome(name: &str, online: &[&str]) -> Bytes {
    line(format!("* welcome {name}, online: {}", roster(online)))
}

/// To everyone else when a member logs in.
pub fn joined(name: &str) -> Bytes {
    line(format!("* {name} joined"))
}

/// Answer to `/who`, to the asker only: the first [`ROSTER_NAMES`]
/// members, then how many more.
pub fn who(online: &[&str]) -> Bytes {
    line(format!("* online: {}", roster(online)))
}

/// Answer to `/help`, to the asker only.
pub fn help() -> Bytes {
    line("* commands: /who, /quit, /help".to_owned())
}

/// To everyone else when a member leaves.
pub fn left(name: &str) -> Bytes {
    line(format!("* {name} left"))
}

/// To everyone else when a member is dropped for not reading.
pub fn left_too_slow(name: &str) -> Bytes {
    line(format!("* {name} left (too slow)"))
}

/// A member's message, to everyone else.
pub fn message(name: &str, text: &str) -> Bytes {
    line(format!("{name}: {text}"))
}

/// An announcement typed on the server's stdin.
pub fn admin(text: &str) -> Bytes {
    line(format!("[admin] {text}"))
}

/// The name is taken (by key, see `names`).
pub fn name_taken(name: &str) -> Bytes {
    line(format!("! name taken: {name}"))
}

/// The name breaks a rule.
pub fn invalid_name(reason: &str) -> Bytes {
    line(format!("! invalid name: {reason}"))
}

/// A line longer than `--max-line` was dropped.
pub fn line_too_long() -> Bytes {
    line("! line too long".to_owned())
}

/// No valid name within `--login-timeout`.
pub fn login_timeout() -> Bytes {
    line("! login timeout".to_owned())
}

/// More than `--max-clients` connections.
pub fn room_full() -> Bytes {
    line("! room full".to_owned())
}

/// SIGINT / SIGTERM.
pub fn shutting_down() -> Bytes {
    line("* server shutting down".to_owned())
}

/// What a client line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/who`
    Who,
    /// `/quit`
    Quit,
    /// `/help`
    Help,
    /// Anything else: a name (before login) or a message (after).
    Text(&'a [u8]),
}

/// Sorts a line into a command or text. Commands are exact (trailing
/// spaces allowed); `/who me` is a message.
pub fn parse(line: &[u8]) -> Command<'_> {
    match line.trim_ascii_end() {
        b"/who" => Command::Who,
        b"/quit" => Command::Quit,
        b"/help" => Command::Help,
        _ => Command::Text(line),
    }
}

/// Message text made safe to forward: invalid UTF-8 becomes U+FFFD (a
/// message, unlike a name, is kept), and every character that could fake a
/// line or rearrange the display is removed: the C0 controls but tab, DEL,
/// the C1 controls, and the format characters (bidi marks, overrides and
/// isolates, zero-width space…) except the zero-width joiner and
/// non-joiner, which emoji and several scripts need.
pub fn clean_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .filter(|&c| {
            let control = c.is_control() && c != '\t';
            let format = super::names::is_format(c) && !matches!(c, '\u{200C}' | '\u{200D}');
            !(control || format || c == '\u{2028}' || c == '\u{2029}')
        })
        .collect()
}
