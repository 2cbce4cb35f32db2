//! Parsing of the command line's sizes, durations and directory grants.

use std::path::PathBuf;
use std::time::Duration;

use wasmpool::Preopen;

/// "512", "64K", "256M", "1G" (powers of 1024) as bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 512, 64K, 256M or 1G"))?;
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use K, M, G or T)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// "250ms", "10s", "2m", "1h", or plain seconds ("1.5").
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("`{text}`: {err}"))
}

/// "HOST", "HOST:GUEST", "HOST:ro", "HOST:GUEST:ro".
pub(crate) fn parse_dir(text: &str) -> Result<Preopen, String> {
    let (rest, read_only) = match text.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (host, guest) = match rest.split_once(':') {
        Some((host, guest)) => (host, guest.to_string()),
        None => (rest, rest.to_string()),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{text}` is not HOST[:GUEST][:ro]"));
    }
    Ok(Preopen {
        host: PathBuf::from(host),
        guest,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_dirs_parse() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        let dir = parse_dir("./data:/data:ro").unwrap();
        assert_eq!(
            (dir.host, dir.guest.as_str(), dir.read_only),
            (PathBuf::from("./data"), "/data", true)
        );
        let dir = parse_dir("/srv").unwrap();
        assert_eq!((dir.guest.as_str(), dir.read_only), ("/srv", false));
        assert!(parse_dir(":x").is_err());
    }
}
