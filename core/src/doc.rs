//! Documents, their kinds, and who may write and read each kind.
//!
//! Every automerge document of a space has a [`DocId`]. The kind fixes the
//! writer set and the reader set (ARCHITECTURE.md, "Documents"):
//!
//! | id                          | written by                         | read by                        |
//! |-----------------------------|------------------------------------|--------------------------------|
//! | `space`                     | admins; coordinators within rights; an invite's bearer, once | every member |
//! | `index/<year>`              | coordinators and admins            | every member                   |
//! | `item/<item>`               | coordinators and admins            | every member                   |
//! | `results/<item>`            | coordinators and admins            | every member                   |
//! | `own/<member>/pub/<part>`   | that member's devices              | every member                   |
//! | `own/<member>/priv/<part>`  | that member's devices              | that member and coordinators   |
//!
//! A member's contributions go into `own/…` documents that member alone
//! writes; `<part>` partitions them (a year, an item) so none grows without
//! bound. The item index is split by year for the same reason.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Ids of members, items, units… are short lowercase tokens.
pub(crate) fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Visibility {
    /// Every member of the space may read it.
    Public,
    /// Only the member and the space's coordinators (and the server) read it.
    Private,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    Space,
    Index { year: u16 },
    Item { item: String },
    Results { item: String },
    Own { member: String, visibility: Visibility, part: String },
}

/// Who may write a document kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writers {
    /// The space document: admins freely, coordinators within their rights,
    /// an invite's bearer for its own redemption. Checked path by path.
    SpaceRegister,
    /// Devices of members who hold the coordinator or admin role.
    Coordinators,
    /// Devices of this one member.
    Member(String),
}

/// Who may read a document kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readers {
    AllMembers,
    MemberAndCoordinators(String),
}

impl Readers {
    /// Whether `member` (a member of the space; `privileged` when they
    /// coordinate or administer it) is among these readers.
    pub fn admit(&self, member: &str, privileged: bool) -> bool {
        match self {
            Readers::AllMembers => true,
            Readers::MemberAndCoordinators(m) => m == member || privileged,
        }
    }
}

impl DocId {
    pub fn own_public(member: &str, part: &str) -> Self {
        DocId::Own { member: member.into(), visibility: Visibility::Public, part: part.into() }
    }

    pub fn own_private(member: &str, part: &str) -> Self {
        DocId::Own { member: member.into(), visibility: Visibility::Private, part: part.into() }
    }

    pub fn writers(&self) -> Writers {
        match self {
            DocId::Space => Writers::SpaceRegister,
            DocId::Index { .. } | DocId::Item { .. } | DocId::Results { .. } => Writers::Coordinators,
            DocId::Own { member, .. } => Writers::Member(member.clone()),
        }
    }

    pub fn readers(&self) -> Readers {
        match self {
            DocId::Own { member, visibility: Visibility::Private, .. } => {
                Readers::MemberAndCoordinators(member.clone())
            }
            _ => Readers::AllMembers,
        }
    }

    /// A short name of the kind, for logs and query tables.
    pub fn kind(&self) -> &'static str {
        match self {
            DocId::Space => "space",
            DocId::Index { .. } => "index",
            DocId::Item { .. } => "item",
            DocId::Results { .. } => "results",
            DocId::Own { .. } => "own",
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Space => write!(f, "space"),
            DocId::Index { year } => write!(f, "index/{year}"),
            DocId::Item { item } => write!(f, "item/{item}"),
            DocId::Results { item } => write!(f, "results/{item}"),
            DocId::Own { member, visibility, part } => {
                let v = match visibility {
                    Visibility::Public => "pub",
                    Visibility::Private => "priv",
                };
                write!(f, "own/{member}/{v}/{part}")
            }
        }
    }
}

impl FromStr for DocId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid("malformed document id".into());
        let token = |t: &str| {
            if valid_token(t) { Ok(t.to_string()) } else { Err(bad()) }
        };
        let parts: Vec<&str> = s.split('/').collect();
        Ok(match parts.as_slice() {
            ["space"] => DocId::Space,
            ["index", y] => {
                let year: u16 = y.parse().map_err(|_| bad())?;
                if !(2000..=9999).contains(&year) || y.len() != 4 {
                    return Err(bad());
                }
                DocId::Index { year }
            }
            ["item", i] => DocId::Item { item: token(i)? },
            ["results", i] => DocId::Results { item: token(i)? },
            ["own", m, v, p] => DocId::Own {
                member: token(m)?,
                visibility: match *v {
                    "pub" => Visibility::Public,
                    "priv" => Visibility::Private,
                    _ => return Err(bad()),
                },
                part: token(p)?,
            },
            _ => return Err(bad()),
        })
    }
}

/// A change as it is stored and as it travels: automerge's change bytes and
/// the signature of its actor over its hash, side by side.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedChange {
    pub bytes: Vec<u8>,
    pub signature: Vec<u8>,
}

impl fmt::Debug for SignedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedChange({} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_round_trip_and_refuse_junk() {
        let ids = [
            DocId::Space,
            DocId::Index { year: 2026 },
            DocId::Item { item: "a1b2".into() },
            DocId::Results { item: "a1b2".into() },
            DocId::own_public("m1", "2026"),
            DocId::own_private("m1", "v-9"),
        ];
        for id in ids {
            assert_eq!(id.to_string().parse::<DocId>().ok(), Some(id));
        }
        for junk in ["", "space/x", "index/26", "item/", "item/A", "own/m/pub", "own/m/x/p", "own/../pub/p", "item/a b"]
        {
            assert!(junk.parse::<DocId>().is_err(), "{junk:?} should be refused");
        }
    }

    #[test]
    fn private_contributions_are_read_by_member_and_coordinators_only() {
        assert_eq!(DocId::own_private("m1", "x").readers(), Readers::MemberAndCoordinators("m1".into()));
        assert_eq!(DocId::own_public("m1", "x").readers(), Readers::AllMembers);
        assert_eq!(DocId::own_public("m1", "x").writers(), Writers::Member("m1".into()));
        assert_eq!(DocId::Item { item: "i".into() }.writers(), Writers::Coordinators);
    }
}
