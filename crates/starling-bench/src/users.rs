//! The users file: what `seed` hands to `run` and `sweep`.
//!
//! One line per seeded account, tab-separated: `id`, `username`, access
//! token, followers, following. Tokens are the only way a load generator
//! speaking the client API can act as a user, and the server stores only
//! their hashes, so the seeder writes the texts here once (the file is a
//! benchmark credential: keep it with the benchmark data). Follower counts
//! let `run` pick the most followed author and an ordinary one for the
//! fan-out lag probe without asking the server.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// The first line of every users file.
const HEADER: &str = "# starling-bench users v1: id\tusername\ttoken\tfollowers\tfollowing";

/// One seeded account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The account id as the server knows it (a decimal string on the wire).
    pub id: String,
    pub username: String,
    pub token: String,
    pub followers: u32,
    pub following: u32,
}

pub fn write(path: &Path, users: &[User]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "{HEADER}")?;
    for u in users {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            u.id, u.username, u.token, u.followers, u.following
        )?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<Vec<User>> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "reading the users file {} (run `starling-bench seed` first)",
            path.display()
        )
    })?;
    let mut users = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [id, username, token, followers, following] = cols[..] else {
            bail!(
                "{}:{}: expected 5 tab-separated columns",
                path.display(),
                n + 1
            );
        };
        users.push(User {
            id: id.to_owned(),
            username: username.to_owned(),
            token: token.to_owned(),
            followers: followers.parse().unwrap_or(0),
            following: following.parse().unwrap_or(0),
        });
    }
    if users.is_empty() {
        bail!("the users file {} lists no users", path.display());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/users.tsv");
        let users = vec![User {
            id: "123".into(),
            username: "u0".into(),
            token: "t".repeat(46),
            followers: 7,
            following: 3,
        }];
        write(&path, &users).unwrap();
        assert_eq!(read(&path).unwrap(), users);
    }
}
