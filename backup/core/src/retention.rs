//! Retention planning (`forget`): which snapshots to keep, and why. Pure.
//!
//! Semantics follow restic's `forget`, which operators know: snapshots are grouped
//! (by tags and paths), sorted newest first; `keep_last` keeps the newest N; each
//! calendar policy keeps the newest snapshot of each of the last N hours / days /
//! ISO weeks / months / years that have a snapshot. A snapshot kept by any rule is
//! kept; every decision carries its reasons. Incomplete snapshots (a failed dump)
//! never count towards a policy's N, so a run of failures cannot push out the
//! last good restore point; they are removed once older than the newest kept
//! complete snapshot.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Id, Result};

/// A retention policy. Zero means "this rule keeps nothing".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Newest N snapshots.
    pub keep_last: u32,
    /// Newest per hour, last N hours that have one.
    pub keep_hourly: u32,
    /// Per day.
    pub keep_daily: u32,
    /// Per ISO week.
    pub keep_weekly: u32,
    /// Per month.
    pub keep_monthly: u32,
    /// Per year.
    pub keep_yearly: u32,
}

impl RetentionPolicy {
    /// A policy that keeps nothing would delete every snapshot: refuse it.
    pub fn validate(&self) -> Result<()> {
        if *self == RetentionPolicy::default() {
            return Err(Error::Invalid {
                what: "retention policy".into(),
                detail: "it keeps nothing; give at least one of --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly".into(),
            });
        }
        Ok(())
    }
}

/// What the planner needs to know of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Id.
    pub id: Id,
    /// Time.
    pub time: DateTime<Utc>,
    /// Grouping key (e.g. tags and paths joined).
    pub group: String,
    /// Whether it is a complete restore point.
    pub complete: bool,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Snapshot id.
    pub id: Id,
    /// Time.
    pub time: DateTime<Utc>,
    /// Group.
    pub group: String,
    /// Kept?
    pub keep: bool,
    /// Why (e.g. `last`, `daily 2026-12-03`, or `not matched by any rule`).
    pub reasons: Vec<String>,
}

/// A retention plan: every snapshot with its decision, newest first within each group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgetPlan {
    /// Decisions.
    pub decisions: Vec<Decision>,
}

impl ForgetPlan {
    /// Ids to remove.
    pub fn remove(&self) -> Vec<Id> {
        self.decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect()
    }
    /// Ids to keep.
    pub fn keep(&self) -> Vec<Id> {
        self.decisions.iter().filter(|d| d.keep).map(|d| d.id).collect()
    }
}

/// Plan which snapshots to keep.
pub fn plan(policy: &RetentionPolicy, snapshots: &[SnapshotInfo]) -> Result<ForgetPlan> {
    policy.validate()?;
    let mut groups: BTreeMap<&str, Vec<&SnapshotInfo>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(&s.group).or_default().push(s);
    }
    let mut decisions = Vec::new();
    type Bucket = fn(&DateTime<Utc>) -> String;
    let rules: [(&str, u32, Bucket); 6] = [
        ("last", policy.keep_last, |_| String::new()),
        ("hourly", policy.keep_hourly, |t| t.format("%Y-%m-%d %H:00").to_string()),
        ("daily", policy.keep_daily, |t| t.format("%Y-%m-%d").to_string()),
        ("weekly", policy.keep_weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.keep_monthly, |t| t.format("%Y-%m").to_string()),
        ("yearly", policy.keep_yearly, |t| t.year().to_string()),
    ];
    for (_, mut list) in groups {
        // newest first; ties broken by id so the plan is deterministic
        list.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); list.len()];
        for (name, n, bucket) in rules {
            if n == 0 {
                continue;
            }
            let mut used = 0u32;
            let mut last_bucket: Option<String> = None;
            for (i, s) in list.iter().enumerate() {
                if !s.complete || used >= n {
                    continue;
                }
                let b = bucket(&s.time);
                let new_bucket = name == "last" || last_bucket.as_deref() != Some(b.as_str());
                if new_bucket {
                    used += 1;
                    reasons[i].push(if name == "last" { "last".to_string() } else { format!("{name} {b}") });
                    last_bucket = Some(b);
                }
            }
        }
        // Incomplete snapshots newer than the newest kept complete one stay (they
        // are the evidence of a failing backup); older ones go.
        let newest_kept = list.iter().zip(&reasons).find(|(_, r)| !r.is_empty()).map(|(s, _)| s.time);
        for (s, mut r) in list.into_iter().zip(reasons) {
            if !s.complete && newest_kept.is_none_or(|t| s.time > t) {
                r.push("incomplete, newer than the newest kept restore point".into());
            }
            let keep = !r.is_empty();
            if !keep {
                r.push(if s.complete { "not matched by any rule".into() } else { "incomplete".into() });
            }
            decisions.push(Decision { id: s.id, time: s.time, group: s.group.clone(), keep, reasons: r });
        }
    }
    Ok(ForgetPlan { decisions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: u8, t: &str, complete: bool) -> SnapshotInfo {
        SnapshotInfo {
            id: Id([n; 32]),
            time: chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").unwrap().and_utc(),
            group: "tenant=ca-1a2b3c4d".into(),
            complete,
        }
    }

    fn kept(p: &ForgetPlan) -> Vec<u8> {
        let mut v: Vec<u8> = p.keep().iter().map(|i| i.0[0]).collect();
        v.sort();
        v
    }

    #[test]
    fn empty_policy_is_refused() {
        let e = plan(&RetentionPolicy::default(), &[]).unwrap_err().to_string();
        assert!(e.contains("keeps nothing"), "{e}");
    }

    #[test]
    fn daily_weekly_monthly() {
        let snaps = vec![
            snap(1, "2026-11-01 02:00", true),
            snap(2, "2026-11-15 02:00", true),
            snap(3, "2026-11-30 02:00", true),
            snap(4, "2026-12-01 02:00", true),
            snap(5, "2026-12-02 02:00", true),
            snap(6, "2026-12-02 14:00", true),
            snap(7, "2026-12-03 02:00", true),
        ];
        let p = plan(&RetentionPolicy { keep_daily: 3, ..Default::default() }, &snaps).unwrap();
        assert_eq!(kept(&p), vec![4, 6, 7]);
        let d6 = p.decisions.iter().find(|d| d.id.0[0] == 6).unwrap();
        assert_eq!(d6.reasons, vec!["daily 2026-12-02".to_string()]);
        let p = plan(&RetentionPolicy { keep_last: 1, keep_monthly: 2, ..Default::default() }, &snaps).unwrap();
        assert_eq!(kept(&p), vec![3, 7]);
        let p = plan(&RetentionPolicy { keep_weekly: 2, ..Default::default() }, &snaps).unwrap();
        // 2026-12-03 is in ISO week 49 (Mon 30 Nov .. Sun 6 Dec); 2026-11-15 (Sun) is week 46
        assert_eq!(kept(&p), vec![2, 7]);
    }

    #[test]
    fn failed_backups_never_push_out_the_last_good_one() {
        let snaps = vec![
            snap(1, "2026-12-01 02:00", true),
            snap(2, "2026-12-02 02:00", false),
            snap(3, "2026-12-03 02:00", false),
        ];
        let p = plan(&RetentionPolicy { keep_last: 1, ..Default::default() }, &snaps).unwrap();
        assert_eq!(kept(&p), vec![1, 2, 3]);
        let snaps = vec![snap(1, "2026-11-30 02:00", false), snap(2, "2026-12-01 02:00", true), snap(3, "2026-12-02 02:00", true)];
        let p = plan(&RetentionPolicy { keep_last: 1, ..Default::default() }, &snaps).unwrap();
        assert_eq!(kept(&p), vec![3]);
        assert_eq!(p.decisions.iter().find(|d| d.id.0[0] == 1).unwrap().reasons, vec!["incomplete".to_string()]);
    }

    #[test]
    fn groups_are_independent() {
        let mut a = snap(1, "2026-12-01 02:00", true);
        a.group = "tenant=a".into();
        let mut b = snap(2, "2026-12-02 02:00", true);
        b.group = "tenant=b".into();
        let p = plan(&RetentionPolicy { keep_last: 1, ..Default::default() }, &[a, b]).unwrap();
        assert_eq!(kept(&p), vec![1, 2]);
    }
}
