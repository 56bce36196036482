//! Environment variables as `init.yaml`, service files and `/env` give
//! them: `KEY=VALUE` entries and the checks on names and values.

/// Checks one environment variable: a non-empty name without `=` or NUL, a value without NUL.
pub fn check_env_pair(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(format!(
            "variable name {key:?} must be non-empty and contain no '=' or NUL"
        ));
    }
    if value.contains('\0') {
        return Err(format!("value of {key} contains a NUL byte"));
    }
    Ok(())
}

/// Parses a `KEY=VALUE` entry.
pub fn parse_env_entry(entry: &str) -> Result<(String, String), String> {
    let (key, value) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not KEY=VALUE"))?;
    check_env_pair(key, value)?;
    Ok((key.to_owned(), value.to_owned()))
}
