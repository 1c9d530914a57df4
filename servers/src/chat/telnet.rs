//! Telnet option negotiation, filtered out of a chat connection's input.
//!
//! A `telnet` client mixes commands into the byte stream, each introduced
//! by `IAC` (byte 0xFF, which never occurs in UTF-8, so no text is lost by
//! removing them): `IAC DO x` / `IAC WILL x` ask about option `x`,
//! `IAC SB … IAC SE` carries a subnegotiation (the window size, say), and
//! after Ctrl-C it sends `IAC IP IAC DO TIMING-MARK` and discards all
//! output until the server answers the `DO`. The chat strips every such
//! sequence before splitting lines, refuses every option (`DO x` → `WONT
//! x`, `WILL x` → `DONT x`), and never broadcasts any of it, so a telnet
//! user who presses Ctrl-C keeps seeing the room.
//!
//! A sequence may be split across reads: the filter keeps its state between
//! calls. It works in place on the bytes just read, so it needs no buffer.

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 0xFF;
/// `IAC DONT x`: please do not use option `x`.
pub const DONT: u8 = 0xFE;
/// `IAC DO x`: please use option `x`.
pub const DO: u8 = 0xFD;
/// `IAC WONT x`: I will not use option `x`.
pub const WONT: u8 = 0xFC;
/// `IAC WILL x`: I would like to use option `x`.
pub const WILL: u8 = 0xFB;
/// `IAC SB x …`: subnegotiation of option `x` begins.
pub const SB: u8 = 0xFA;
/// `IAC SE`: subnegotiation ends.
pub const SE: u8 = 0xF0;

/// Where the filter is in the telnet grammar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Telnet {
    /// Ordinary bytes.
    #[default]
    Data,
    /// After `IAC`.
    Command,
    /// After `IAC DO`/`DONT`/`WILL`/`WONT`: the option byte comes next.
    Option(u8),
    /// Inside `IAC SB …`, discarding.
    Sub,
    /// After `IAC` inside a subnegotiation.
    SubCommand,
}

impl Telnet {
    /// Removes every telnet command from `bytes` (in place) and returns the
    /// length of the text left at the front; the answers owed to the client
    /// (`IAC WONT x`, `IAC DONT x`) are appended to `replies`.
    pub fn filter(&mut self, bytes: &mut [u8], replies: &mut Vec<u8>) -> usize {
        let mut kept = 0;
        for i in 0..bytes.len() {
            let byte = bytes[i];
            *self = match (*self, byte) {
                (Telnet::Data, IAC) => Telnet::Command,
                (Telnet::Data, _) => {
                    bytes[kept] = byte;
                    kept += 1;
                    Telnet::Data
                }
                (Telnet::Command, DO | DONT | WILL | WONT) => Telnet::Option(byte),
                (Telnet::Command, SB) => Telnet::Sub,
                // `IAC IAC` (a data byte 255: never text), or a two-byte
                // command such as `IAC IP` or `IAC AYT`: dropped.
                (Telnet::Command, _) => Telnet::Data,
                (Telnet::Option(verb), option) => {
                    match verb {
                        DO => replies.extend_from_slice(&[IAC, WONT, option]),
                        WILL => replies.extend_from_slice(&[IAC, DONT, option]),
                        // WONT and DONT agree with what we already do.
                        _ => {}
                    }
                    Telnet::Data
                }
                (Telnet::Sub, IAC) => Telnet::SubCommand,
                (Telnet::Sub, _) => Telnet::Sub,
                (Telnet::SubCommand, SE) => Telnet::Data,
                (Telnet::SubCommand, _) => Telnet::Sub,
            };
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut state = Telnet::default();
        let (mut text, mut replies) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let mut bytes = chunk.to_vec();
            let n = state.filter(&mut bytes, &mut replies);
            text.extend_from_slice(&bytes[..n]);
        }
        (text, replies)
    }

    #[test]
    fn ctrl_c_is_stripped_and_timing_mark_refused() {
        let (text, replies) = run(&[b"hi\xff\xf4\xff\xfd\x06there"]);
        assert_eq!(text, b"hithere");
        assert_eq!(replies, [IAC, WONT, 6]);
    }

    #[test]
    fn sequences_split_across_reads_are_still_recognised() {
        let input = b"a\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0b\xff\xffc";
        for split in 0..input.len() {
            let (text, replies) = run(&[&input[..split], &input[split..]]);
            assert_eq!(text, b"abc", "split at {split}");
            assert_eq!(replies, [IAC, DONT, 0x1f], "split at {split}");
        }
    }

    #[test]
    fn wont_and_dont_need_no_answer_and_utf8_passes() {
        let (text, replies) = run(&["\u{4f60}\u{597d}\n".as_bytes(), b"\xff\xfc\x01\xff\xfe\x03"]);
        assert_eq!(text, "\u{4f60}\u{597d}\n".as_bytes());
        assert!(replies.is_empty());
    }
}
