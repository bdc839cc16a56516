//! rclone's file-name encodings, per path segment, so `cairn sync` writes the same
//! names as `rclone sync` and the two can take turns on one store: B2's default
//! (`Slash,BackSlash,Del,Ctl,InvalidUtf8,Dot` applied after the Linux local mask), and
//! what rclone writes over SFTP (the same without `BackSlash`).
//!
//! Mappings: control bytes 0x01-0x1F -> U+2401-U+241F, DEL -> U+2421, `\` -> U+FF3C
//! (B2 only), a segment that is exactly `.` or `..` -> U+FF0E (once per dot). Look-alikes
//! that are literally in a name (U+2400-U+241F, U+2421, U+FF3C where `\` is encoded,
//! and the quote U+201B itself) are escaped with the quote U+201B so decoding is exact.
//! Pinned by tests against rclone.

/// Which of rclone's encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// `\` travels as U+FF3C (B2), or as itself (SFTP).
    pub backslash: bool,
}

impl Encoding {
    pub const B2: Encoding = Encoding { backslash: true };
    pub const SFTP: Encoding = Encoding { backslash: false };

    /// Encodes every `/`-separated segment of a relative path.
    pub fn encode_path(self, p: &str) -> String {
        p.split('/')
            .map(|s| encode_segment(self, s))
            .collect::<Vec<_>>()
            .join("/")
    }

    pub fn decode_path(self, p: &str) -> String {
        p.split('/')
            .map(|s| decode_segment(self, s))
            .collect::<Vec<_>>()
            .join("/")
    }
}

const QUOTE: char = '\u{201B}';
const FULLWIDTH_BACKSLASH: char = '\u{FF3C}';
const FULLWIDTH_DOT: char = '\u{FF0E}';
const SYMBOL_DEL: char = '\u{2421}';

fn is_lookalike(e: Encoding, c: char) -> bool {
    matches!(c, '\u{2400}'..='\u{241F}')
        || c == SYMBOL_DEL
        || (e.backslash && c == FULLWIDTH_BACKSLASH)
        || c == QUOTE
}

/// Whether `s` starts with two hex digits (an escaped byte after the quote).
fn hex_pair(s: &str) -> bool {
    s.len() >= 2 && s.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)
}

/// A local path segment as rclone names it on B2. The segment is an object name of the
/// local backend, where bytes that are not UTF-8 are already the quote and two hex digits
/// and a literal quote is doubled: exactly rclone's spelling, so those pass through.
fn encode_segment(e: Encoding, seg: &str) -> String {
    if seg == "." || seg == ".." {
        return seg.chars().map(|_| FULLWIDTH_DOT).collect();
    }
    let mut out = String::with_capacity(seg.len());
    let mut rest = seg;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            QUOTE if rest.starts_with(QUOTE) => {
                out.push_str("\u{201B}\u{201B}");
                rest = &rest[QUOTE.len_utf8()..];
            }
            QUOTE if hex_pair(rest) => {
                out.push(QUOTE);
                out.push_str(&rest[..2].to_ascii_uppercase());
                rest = &rest[2..];
            }
            '\u{01}'..='\u{1F}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or(c)),
            '\u{7F}' => out.push(SYMBOL_DEL),
            '\\' if e.backslash => out.push(FULLWIDTH_BACKSLASH),
            c if is_lookalike(e, c) => {
                out.push(QUOTE);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_segment`]: a B2 name segment as a local object name.
fn decode_segment(e: Encoding, seg: &str) -> String {
    if !seg.is_empty() && seg.chars().all(|c| c == FULLWIDTH_DOT) && seg.chars().count() <= 2 {
        return ".".repeat(seg.chars().count());
    }
    let mut out = String::with_capacity(seg.len());
    let mut rest = seg;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            // A doubled quote, or a lone one, is a literal quote: doubled locally too.
            QUOTE
                if rest.starts_with(QUOTE)
                    || !(hex_pair(rest)
                        || rest.chars().next().is_some_and(|n| is_lookalike(e, n))) =>
            {
                out.push_str("\u{201B}\u{201B}");
                rest = rest.strip_prefix(QUOTE).unwrap_or(rest);
            }
            QUOTE if hex_pair(rest) => {
                out.push(QUOTE);
                out.push_str(&rest[..2]);
                rest = &rest[2..];
            }
            QUOTE => {
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
            }
            '\u{2401}'..='\u{241F}' => out.push(char::from_u32(c as u32 - 0x2400).unwrap_or(c)),
            SYMBOL_DEL => out.push('\u{7F}'),
            FULLWIDTH_BACKSLASH if e.backslash => out.push('\\'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_round_trips() {
        for (local, b2) in [
            ("plain name.txt", "plain name.txt"),
            ("back\\slash", "back\u{FF3C}slash"),
            ("tab\there", "tab\u{2409}here"),
            ("del\u{7F}", "del\u{2421}"),
            ("quote\u{201B}\u{201B}x", "quote\u{201B}\u{201B}x"),
            ("bad\u{201B}FEbyte", "bad\u{201B}FEbyte"),
            ("already\u{FF3C}", "already\u{201B}\u{FF3C}"),
            ("sp+ace#%?", "sp+ace#%?"),
        ] {
            assert_eq!(encode_segment(Encoding::B2, local), b2, "{local:?}");
            assert_eq!(decode_segment(Encoding::B2, b2), local, "{b2:?}");
        }
        let b2 = Encoding::B2;
        assert_eq!(b2.encode_path("a/./b"), "a/\u{FF0E}/b");
        assert_eq!(b2.decode_path(&b2.encode_path("x/../y")), "x/../y");
    }

    /// What rclone 1.60 wrote over SFTP for these names (seen on the server's disk).
    #[test]
    fn sftp_as_rclone_writes_it() {
        let e = Encoding::SFTP;
        for (local, wire) in [
            ("tab\tname", "tab\u{2409}name"),
            ("del\u{7F}", "del\u{2421}"),
            ("lit\u{2409}x", "lit\u{201B}\u{2409}x"),
            ("back\\slash", "back\\slash"),
            ("wide\u{FF3C}", "wide\u{FF3C}"),
        ] {
            assert_eq!(e.encode_path(local), wire, "{local:?}");
            assert_eq!(e.decode_path(wire), local, "{wire:?}");
        }
    }
}
