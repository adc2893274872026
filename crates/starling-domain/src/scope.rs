//! OAuth scopes as Mastodon defines them.
//!
//! `read` covers every `read:*`, `write` every `write:*`, and the deprecated
//! `follow` covers the block/follow/mute scopes. Endpoints state the scopes
//! that allow them; a token is allowed if any scope it holds covers one of
//! them.

use std::fmt;

macro_rules! scopes {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One known scope.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Scope { $($variant),* }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name),* }
            }

            pub fn parse(s: &str) -> Option<Scope> {
                match s { $($name => Some(Scope::$variant),)* _ => None }
            }
        }
    };
}

scopes! {
    Read => "read",
    Write => "write",
    Follow => "follow",
    Push => "push",
    Profile => "profile",
    ReadAccounts => "read:accounts",
    ReadBlocks => "read:blocks",
    ReadBookmarks => "read:bookmarks",
    ReadFavourites => "read:favourites",
    ReadFilters => "read:filters",
    ReadFollows => "read:follows",
    ReadLists => "read:lists",
    ReadMutes => "read:mutes",
    ReadNotifications => "read:notifications",
    ReadSearch => "read:search",
    ReadStatuses => "read:statuses",
    WriteAccounts => "write:accounts",
    WriteBlocks => "write:blocks",
    WriteBookmarks => "write:bookmarks",
    WriteConversations => "write:conversations",
    WriteFavourites => "write:favourites",
    WriteFilters => "write:filters",
    WriteFollows => "write:follows",
    WriteLists => "write:lists",
    WriteMedia => "write:media",
    WriteMutes => "write:mutes",
    WriteNotifications => "write:notifications",
    WriteReports => "write:reports",
    WriteStatuses => "write:statuses",
}

impl Scope {
    /// Whether holding `self` grants `wanted`.
    pub fn covers(self, wanted: Scope) -> bool {
        use Scope::*;
        if self == wanted {
            return true;
        }
        match self {
            Read => wanted.as_str().starts_with("read:"),
            Write => wanted.as_str().starts_with("write:"),
            Follow => matches!(
                wanted,
                ReadBlocks | ReadFollows | ReadMutes | WriteBlocks | WriteFollows | WriteMutes
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, kept as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl ScopeSet {
    pub fn empty() -> Self {
        Self(0)
    }

    pub fn of(scopes: &[Scope]) -> Self {
        scopes.iter().fold(Self(0), |set, s| set.with(*s))
    }

    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | (1 << scope as u8))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & (1 << scope as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// Parses a scope list separated by spaces or `+` (as scopes arrive in
    /// authorize URLs). An empty list is `Ok(empty)`; callers pick the default.
    pub fn parse(list: &str) -> Result<Self, UnknownScope> {
        list.split(|c: char| c.is_whitespace() || c == '+')
            .filter(|s| !s.is_empty())
            .try_fold(Self(0), |set, s| {
                Scope::parse(s)
                    .map(|scope| set.with(scope))
                    .ok_or_else(|| UnknownScope(s.to_owned()))
            })
    }

    /// Whether this set grants `wanted`.
    pub fn grants(self, wanted: Scope) -> bool {
        self.iter().any(|held| held.covers(wanted))
    }

    /// Whether this set grants any of `wanted` (how endpoints state needs).
    pub fn grants_any(self, wanted: &[Scope]) -> bool {
        wanted.iter().any(|w| self.grants(*w))
    }

    /// Whether every scope of `other` is granted by this set.
    pub fn grants_all(self, other: ScopeSet) -> bool {
        other.iter().all(|w| self.grants(w))
    }
}

impl fmt::Display for ScopeSet {
    /// Space-separated, the form OAuth uses on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spaces_and_pluses() {
        let set = ScopeSet::parse("read write+follow  push").unwrap();
        assert_eq!(set.to_string(), "read write follow push");
        assert_eq!(ScopeSet::parse("").unwrap(), ScopeSet::empty());
        assert_eq!(
            ScopeSet::parse("read admin:read"),
            Err(UnknownScope("admin:read".into()))
        );
    }

    #[test]
    fn hierarchy() {
        let set = ScopeSet::parse("read follow").unwrap();
        assert!(set.grants(Scope::ReadAccounts));
        assert!(set.grants(Scope::WriteFollows));
        assert!(!set.grants(Scope::WriteStatuses));
        assert!(!set.grants(Scope::Write));
        let granular = ScopeSet::parse("read:accounts").unwrap();
        assert!(!granular.grants(Scope::Read));
        assert!(granular.grants_any(&[Scope::Profile, Scope::ReadAccounts]));
        assert!(ScopeSet::parse("write")
            .unwrap()
            .grants_all(ScopeSet::parse("write:accounts write:media").unwrap()));
    }

    #[test]
    fn every_scope_round_trips() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(*s));
        }
        assert!(Scope::ALL.len() < 64);
    }
}
