//! Settling the points ledger (积分). Pure: the same movements and
//! resolutions give the same balances and flags on every replica, in
//! whatever order they arrived.
//!
//! **Double entry.** Every movement debits one account and credits another
//! by the same positive number of points, so the accounts always sum to
//! zero. Points are issued from the community account [`COMMUNITY`], whose
//! balance is minus the points in circulation. Balances are derived here,
//! never stored as truth.
//!
//! **Offline double spends.** Movements are applied in (time, receipt) order.
//! A movement that takes a member's account below their limit (default 0) is
//! *flagged*, not dropped: it still applies, so every replica shows the same
//! balances, and a coordinator resolves it — `Accept` (the overdraft stands,
//! unflagged) or `Void` (the movement is removed from every balance). A
//! redemption beyond a reward's stock is flagged the same way.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The account points are issued from.
pub const COMMUNITY: &str = "community";

/// One double entry: `points` leave `from` and reach `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Unique id of the entry (its document and key).
    pub id: String,
    pub from: String,
    pub to: String,
    pub points: i64,
    /// When its author's device made it (milliseconds).
    pub at: i64,
    pub author: String,
    /// Why: `hours`, `transfer`, `redeem`, `reward`…
    pub reason: String,
    /// What it links to (the hours entry, the reward, the survey).
    pub link: Option<String>,
    /// The reward a redemption takes from stock.
    pub reward: Option<String>,
    /// The hash of the change that wrote it: breaks ties in time.
    pub receipt: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The overdraft stands; the flag is cleared.
    Accept,
    /// The movement is removed from every balance.
    Void,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// The movement took its payer's balance below their limit.
    Overdraft,
    /// The redemption took more than the reward's stock.
    OutOfStock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// The movement that took the account below its limit.
    pub movement: String,
    pub kind: FlagKind,
    /// The payer's account, or the reward out of stock.
    pub account: String,
    /// The balance (or stock left) right after it, and the limit it crossed.
    pub balance_after: i64,
    pub limit: i64,
}

/// The settled ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    pub balances: BTreeMap<String, i64>,
    /// Unresolved flags, in ledger order.
    pub flags: Vec<Flag>,
    /// Movements a coordinator voided.
    pub voided: BTreeSet<String>,
    /// Movements whose overdraft a coordinator accepted.
    pub accepted: BTreeSet<String>,
    /// Movements refused outright: not positive, from and to the same
    /// account, or one that would take a balance out of range.
    pub malformed: BTreeSet<String>,
    /// Every applied movement id, in ledger order.
    pub order: Vec<String>,
}

/// Settle the ledger. `limits` maps an account to its minimum balance
/// (absent: 0); the community account has none. `stock` maps a reward to
/// the number of redemptions it can take (absent: unlimited).
pub fn settle(
    movements: &[Movement],
    limits: &BTreeMap<String, i64>,
    stock: &BTreeMap<String, i64>,
    resolutions: &BTreeMap<String, Resolution>,
) -> Settled {
    let mut left = stock.clone();
    let mut sorted: Vec<&Movement> = movements.iter().collect();
    sorted.sort_by(|a, b| (a.at, &a.receipt, &a.id).cmp(&(b.at, &b.receipt, &b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);
    let mut out = Settled::default();
    for m in sorted {
        if m.points <= 0 || m.from == m.to {
            out.malformed.insert(m.id.clone());
            continue;
        }
        let resolution = resolutions.get(&m.id).copied();
        if resolution == Some(Resolution::Void) {
            out.voided.insert(m.id.clone());
            continue;
        }
        // Checked arithmetic: a movement that would take a balance out of
        // range is set aside (with `malformed`), on every replica alike.
        let from = out.balances.get(&m.from).copied().unwrap_or(0);
        let to = out.balances.get(&m.to).copied().unwrap_or(0);
        let (Some(after), Some(to_after)) = (from.checked_sub(m.points), to.checked_add(m.points)) else {
            out.malformed.insert(m.id.clone());
            continue;
        };
        out.balances.insert(m.from.clone(), after);
        out.balances.insert(m.to.clone(), to_after);
        out.order.push(m.id.clone());
        let mut crossed = Vec::new();
        if m.from != COMMUNITY {
            let limit = limits.get(&m.from).copied().unwrap_or(0);
            if after < limit {
                crossed.push((FlagKind::Overdraft, m.from.clone(), after, limit));
            }
        }
        if let Some(reward) = &m.reward
            && let Some(n) = left.get_mut(reward)
        {
            *n -= 1;
            if *n < 0 {
                crossed.push((FlagKind::OutOfStock, reward.clone(), *n, 0));
            }
        }
        if crossed.is_empty() {
            continue;
        }
        if resolution == Some(Resolution::Accept) {
            out.accepted.insert(m.id.clone());
        } else {
            for (kind, account, balance_after, limit) in crossed {
                out.flags.push(Flag { movement: m.id.clone(), kind, account, balance_after, limit });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mv(id: &str, from: &str, to: &str, points: i64, at: i64) -> Movement {
        Movement {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            points,
            at,
            author: from.into(),
            reason: "transfer".into(),
            link: None,
            reward: None,
            receipt: [id.bytes().fold(0u8, |a, b| a.wrapping_add(b)); 32],
        }
    }

    fn none<T>() -> BTreeMap<String, T> {
        BTreeMap::new()
    }

    #[test]
    fn redemptions_beyond_stock_are_flagged_in_ledger_order() {
        let redeem =
            |id: &str, from: &str, at| Movement { reward: Some("tea".into()), ..mv(id, from, COMMUNITY, 2, at) };
        let ms = [
            mv("e1", COMMUNITY, "li", 10, 1),
            mv("e2", COMMUNITY, "chen", 10, 1),
            redeem("r2", "chen", 6),
            redeem("r1", "li", 5),
        ];
        let stock = BTreeMap::from([("tea".to_string(), 1)]);
        let s = settle(&ms, &none(), &stock, &none());
        assert_eq!(s.flags.len(), 1);
        assert_eq!(
            (s.flags[0].movement.as_str(), s.flags[0].kind, s.flags[0].balance_after),
            ("r2", FlagKind::OutOfStock, -1)
        );
        // Voiding the earlier redemption frees the stock for the later.
        let s = settle(&ms, &none(), &stock, &BTreeMap::from([("r1".to_string(), Resolution::Void)]));
        assert!(s.flags.is_empty());
    }

    #[test]
    fn two_offline_spends_of_the_same_points_flag_the_later() {
        let ms =
            [mv("earn", COMMUNITY, "li", 10, 1), mv("phone-a", "li", "shop", 8, 5), mv("phone-b", "li", "chen", 8, 6)];
        let s = settle(&ms, &none(), &none(), &none());
        assert_eq!(s.balances["li"], -6, "flagged, not dropped: both spends apply");
        assert_eq!(
            s.flags,
            [Flag {
                movement: "phone-b".into(),
                kind: FlagKind::Overdraft,
                account: "li".into(),
                balance_after: -6,
                limit: 0
            }]
        );
        assert_eq!(s.balances.values().sum::<i64>(), 0);
        // A coordinator voids the later spend; or accepts it.
        let void = BTreeMap::from([("phone-b".to_string(), Resolution::Void)]);
        let s = settle(&ms, &none(), &none(), &void);
        assert_eq!((s.balances["li"], s.balances.get("chen").copied(), s.flags.len()), (2, None, 0));
        let accept = BTreeMap::from([("phone-b".to_string(), Resolution::Accept)]);
        let s = settle(&ms, &none(), &none(), &accept);
        assert_eq!((s.balances["li"], s.flags.len(), s.accepted.len()), (-6, 0, 1));
        // A member allowed to go to -10 is not flagged at -6.
        let s = settle(&ms, &BTreeMap::from([("li".to_string(), -10)]), &none(), &none());
        assert!(s.flags.is_empty());
        // Nothing that would overflow a balance moves, in either order.
        let huge = [mv("a", "li", "chen", i64::MAX, 1), mv("b", "li", "chen", i64::MAX, 2)];
        let s = settle(&huge, &none(), &none(), &none());
        assert_eq!((s.malformed.len(), s.balances["chen"], s.balances.values().sum::<i64>()), (1, i64::MAX, 0));
        // Nothing negative or circular moves.
        let s = settle(&[mv("x", "li", "li", 5, 1), mv("y", "li", "chen", -5, 2)], &none(), &none(), &none());
        assert_eq!(s.malformed.len(), 2);
        assert!(s.balances.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Any arrival order gives the same balances and flags; the
        /// accounts sum to zero; each balance is the sum of its movements.
        #[test]
        fn settling_ignores_arrival_order(
            raw in prop::collection::vec((0u8..5, 0u8..5, -2i64..30, 0i64..50), 0..60),
            resolved in prop::collection::vec((0usize..60, any::<bool>()), 0..6),
            seed in any::<u64>(),
        ) {
            let name = |i: u8| if i == 0 { COMMUNITY.to_string() } else { format!("m{i}") };
            let ms: Vec<Movement> = raw.iter().enumerate().map(|(n, (f, t, p, at))| Movement {
                receipt: { let mut r = [0u8; 32]; r[..8].copy_from_slice(&((n as u64) * 7919 % 61).to_be_bytes()); r[8] = n as u8; r },
                ..mv(&format!("e{n}"), &name(*f), &name(*t), *p, *at)
            }).collect();
            let resolutions: BTreeMap<String, Resolution> = resolved.iter()
                .map(|(i, v)| (format!("e{i}"), if *v { Resolution::Void } else { Resolution::Accept }))
                .collect();
            let limits = BTreeMap::from([("m1".to_string(), -20)]);
            let ms: Vec<Movement> = ms.into_iter().enumerate()
                .map(|(n, m)| if n % 3 == 0 { Movement { reward: Some("tea".into()), ..m } } else { m })
                .collect();
            let stock = BTreeMap::from([("tea".to_string(), 3)]);
            let want = settle(&ms, &limits, &stock, &resolutions);
            let mut shuffled = ms.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(&settle(&shuffled, &limits, &stock, &resolutions), &want);
            prop_assert_eq!(want.balances.values().sum::<i64>(), 0);
            let applied: BTreeSet<&String> = want.order.iter().collect();
            for (account, balance) in &want.balances {
                let sum: i64 = ms.iter().filter(|m| applied.contains(&m.id)).map(|m| {
                    if &m.to == account { m.points } else if &m.from == account { -m.points } else { 0 }
                }).sum();
                prop_assert_eq!(sum, *balance);
            }
            for f in &want.flags {
                prop_assert!(f.balance_after < f.limit);
                prop_assert!(f.account != COMMUNITY);
            }
            let taken = want.order.iter().filter(|id| ms.iter().any(|m| &m.id == *id && m.reward.is_some())).count();
            let out_of_stock = want.flags.iter().filter(|f| f.kind == FlagKind::OutOfStock).count();
            let accepted_beyond = taken.saturating_sub(3).saturating_sub(out_of_stock);
            prop_assert!(accepted_beyond <= want.accepted.len(), "every redemption beyond stock is flagged or accepted");
        }
    }
}
