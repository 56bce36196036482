//! `pipeline keygen --out FILE`: a client key pair.

use std::path::Path;

use attested_channel::StaticKey;
use attested_channel::keys::pub_path;

use super::CommandError;

/// Writes a new key pair to `out` (private, mode 0600) and `out.pub`,
/// prints the public key line on stdout and says what to do with it on
/// stderr.
pub fn keygen(out: &Path, comment: &str) -> Result<(), CommandError> {
    let key = StaticKey::generate_files(out, comment)?;
    println!("{}", key.public().to_line(comment));
    eprintln!(
        "wrote {} (private, mode 0600) and {}; add the .pub line, with its permissions, to the server's authorized keys",
        out.display(),
        pub_path(out).display()
    );
    Ok(())
}
