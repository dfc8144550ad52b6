//! Quoting a user's value back in an error: never more than a short prefix, so that a
//! 10 KB namespace or a 1 MB regex makes a short, readable message, not a huge one.

/// Bytes of a user's value an error message repeats.
pub const ECHO_BYTES: usize = 64;

/// `value` quoted, cut to [`ECHO_BYTES`] (on a character boundary) with `…` and its full
/// length when longer: `"Phường Châu Đốc"`, or `"xxxx…" (10240 bytes)`.
pub fn echo(value: &str) -> String {
    if value.len() <= ECHO_BYTES {
        return format!("{value:?}");
    }
    format!("{:?} ({} bytes)", shorten(value, ECHO_BYTES), value.len())
}

/// `value` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn shorten(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| value.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", value.get(..cut).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_on_a_character_boundary() {
        assert_eq!(echo("Châu Đốc"), "\"Châu Đốc\"");
        let long = "Đ".repeat(5000);
        let e = echo(&long);
        assert!(e.len() < 100, "{e}");
        assert!(
            e.ends_with("… (10000 bytes)") || e.contains("…\" (10000 bytes)"),
            "{e}"
        );
    }
}
