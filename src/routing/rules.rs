//! Routing rules: the typed form the engine evaluates, the JSON form the API
//! and CLI speak, and the checks that turn one into the stored row.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::routing::{RuleData, RuleRow};

pub const KINDS: [&str; 6] = [
    "sticky",
    "prefix",
    "did",
    "hours",
    "round_robin",
    "least_loaded",
];

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Where a call (or a lead) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user: their extension for the PBX, the user for a lead.
    User(i64),
    /// A member of the team, picked in turn.
    Team(i64),
    /// A raw PBX dial string or queue, e.g. `Queue/support`.
    Pbx(String),
}

impl Target {
    /// Parses the stored form `user:ID`, `team:ID` or `pbx:RAW`.
    pub fn parse_stored(s: &str) -> Result<Target, String> {
        let bad = || format!("`{s}` is not user:ID, team:ID or pbx:TARGET");
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "user" => rest.parse().map(Target::User).map_err(|_| bad()),
            "team" => rest.parse().map(Target::Team).map_err(|_| bad()),
            "pbx" => {
                check_pbx_target(rest)?;
                Ok(Target::Pbx(rest.to_owned()))
            }
            _ => Err(bad()),
        }
    }

    pub fn to_stored(&self) -> String {
        match self {
            Target::User(id) => format!("user:{id}"),
            Target::Team(id) => format!("team:{id}"),
            Target::Pbx(s) => format!("pbx:{s}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::User(id) => write!(f, "user {id}"),
            Target::Team(id) => write!(f, "team {id}"),
            Target::Pbx(s) => f.write_str(s),
        }
    }
}

/// A PBX target is handed to the dialplan verbatim, so it may hold only the
/// characters of dial strings: letters, digits and `/ _ - . @ : + # * &`.
pub fn check_pbx_target(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 {
        return Err("a PBX target must be 1 to 128 characters".into());
    }
    if let Some(c) = s.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '/' | '_' | '-' | '.' | '@' | ':' | '+' | '#' | '*' | '&'))
    }) {
        return Err(format!(
            "a PBX target such as Queue/support or PJSIP/101 may not contain `{}`",
            c.escape_default()
        ));
    }
    Ok(())
}

/// A weekly window in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub tz: Tz,
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after local midnight; `close` may be 1440 (24:00).
    pub open: u32,
    pub close: u32,
}

impl Schedule {
    /// Whether `now` falls inside the window. A window that closes before it
    /// opens runs past midnight and belongs to the day it opened on.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = local.hour() * 60 + local.minute();
        if self.open < self.close {
            self.days[day] && (self.open..self.close).contains(&minute)
        } else {
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.open) || (self.days[yesterday] && minute < self.close)
        }
    }

    /// The moment `work` of open time has gone by after `from`: only time
    /// inside the window counts, so what does not fit before closing carries
    /// on at the next opening (`from` outside the window starts counting at
    /// the next opening).
    pub fn after_open_time(&self, from: DateTime<Utc>, work: TimeDelta) -> DateTime<Utc> {
        let mut left = work.max(TimeDelta::zero());
        if left.is_zero() {
            return from;
        }
        let mut cursor = from;
        // Yesterday's window may run past midnight into today.
        let mut day = from.with_timezone(&self.tz).date_naive();
        day = day.pred_opt().unwrap_or(day);
        // Every week has at least one window of at least a minute, so this
        // ends; the bound only guards against a schedule built by hand.
        for _ in 0..(7 * (work.num_minutes() + 2)).min(200_000) {
            if let Some((opens, closes)) = self.window_on(day)
                && closes > cursor
            {
                let start = opens.max(cursor);
                let open = closes - start;
                if left <= open {
                    return start + left;
                }
                left -= open;
                cursor = closes;
            }
            match day.succ_opt() {
                Some(d) => day = d,
                None => break,
            }
        }
        cursor + left
    }

    /// The window that opens on local `day`, in UTC (none on a closed day).
    fn window_on(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days[day.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let at = |day: NaiveDate, minute: u32| -> Option<DateTime<Utc>> {
            let (day, minute) = if minute >= 1440 {
                (day.succ_opt()?, minute - 1440)
            } else {
                (day, minute)
            };
            let naive = day.and_hms_opt(minute / 60, minute % 60, 0)?;
            Some(local_to_utc(self.tz, naive))
        };
        let opens = at(day, self.open)?;
        let closes = if self.open < self.close {
            at(day, self.close)?
        } else {
            at(day.succ_opt()?, self.close)?
        };
        (closes > opens).then_some((opens, closes))
    }
}

/// A wall-clock time in `tz`: the earlier one when clocks go back, the
/// first valid one after the gap when they go forward.
fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut n = naive;
    for _ in 0..=16 {
        if let Some(t) = tz.from_local_datetime(&n).earliest() {
            return t.with_timezone(&Utc);
        }
        n += TimeDelta::minutes(15);
    }
    Utc.from_utc_datetime(&naive)
}

impl ScheduleSpec {
    /// Checks the spec and gives the window it describes; errors name the
    /// field under `field` (`schedule.days: …`).
    pub fn parse(&self, field: &str) -> Result<Schedule, String> {
        let tz: Tz = self.timezone.trim().parse().map_err(|_| {
            format!(
                "{field}.timezone: `{}` is not a time zone such as Europe/Berlin",
                self.timezone
            )
        })?;
        let days = parse_days(self.days.iter().map(String::as_str))
            .map_err(|e| format!("{field}.days: {e}"))?;
        let open = parse_hhmm(&format!("{field}.from"), &self.from, false)?;
        let close = parse_hhmm(&format!("{field}.to"), &self.to, true)?;
        if open == close {
            return Err(format!("{field}: from and to must differ"));
        }
        // Closing at 00:00 is closing at the end of the day.
        let close = if close == 0 { 1440 } else { close };
        Ok(Schedule {
            tz,
            days,
            open,
            close,
        })
    }
}

/// What a rule looks at and where it sends the call.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// The owner of the caller's contact (or company), or the manager of the caller's open lead.
    Sticky,
    /// Callers whose E.164 number starts with `prefix` (e.g. `+49`).
    Prefix { prefix: String, target: Target },
    /// Calls to this dialled number; `key` is the number as compared (see `did_key`).
    Did { key: String, target: Target },
    /// Inside the window → `inside`, outside → `outside`; either may be absent.
    Hours {
        schedule: Schedule,
        inside: Option<Target>,
        outside: Option<Target>,
    },
    /// The next available member of the team, in turn.
    RoundRobin { team: i64 },
    /// The available member of the team with the fewest active calls (ties in turn).
    LeastLoaded { team: i64 },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Sticky => "sticky",
            RuleKind::Prefix { .. } => "prefix",
            RuleKind::Did { .. } => "did",
            RuleKind::Hours { .. } => "hours",
            RuleKind::RoundRobin { .. } => "round_robin",
            RuleKind::LeastLoaded { .. } => "least_loaded",
        }
    }
}

/// A rule ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub priority: i64,
    pub name: String,
    pub enabled: bool,
    pub kind: RuleKind,
}

impl Rule {
    /// Parses a stored row; `did_key` puts dialled numbers in comparable form.
    pub fn from_row(row: &RuleRow, did_key: impl Fn(&str) -> String) -> Result<Rule, String> {
        let target = |t: &Option<String>| t.as_deref().map(Target::parse_stored).transpose();
        let need =
            |t: Option<Target>| t.ok_or_else(|| format!("a {} rule needs a target", row.kind));
        let team = |t: Option<Target>| match need(t)? {
            Target::Team(id) => Ok(id),
            _ => Err(format!("the target of a {} rule is a team", row.kind)),
        };
        let number = || {
            row.match_number
                .clone()
                .ok_or_else(|| format!("a {} rule needs its number", row.kind))
        };
        let kind = match row.kind.as_str() {
            "sticky" => RuleKind::Sticky,
            "prefix" => RuleKind::Prefix {
                prefix: number()?,
                target: need(target(&row.target)?)?,
            },
            "did" => RuleKind::Did {
                key: did_key(&number()?),
                target: need(target(&row.target)?)?,
            },
            "hours" => {
                let tz: Tz = row
                    .timezone
                    .as_deref()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| "an hours rule needs a valid time zone".to_owned())?;
                let days = parse_days(row.days.as_deref().unwrap_or("").split(','))?;
                let (open, close) = match (row.open_minute, row.close_minute) {
                    // 0 was stored for `to: "00:00"` before it was read as 24:00.
                    (Some(o), Some(c)) if (0..1440).contains(&o) && (0..=1440).contains(&c) => {
                        (o as u32, if c == 0 { 1440 } else { c as u32 })
                    }
                    _ => return Err("an hours rule needs its opening and closing times".into()),
                };
                RuleKind::Hours {
                    schedule: Schedule {
                        tz,
                        days,
                        open,
                        close,
                    },
                    inside: target(&row.target)?,
                    outside: target(&row.outside_target)?,
                }
            }
            "round_robin" => RuleKind::RoundRobin {
                team: team(target(&row.target)?)?,
            },
            "least_loaded" => RuleKind::LeastLoaded {
                team: team(target(&row.target)?)?,
            },
            other => return Err(format!("unknown rule kind `{other}`")),
        };
        Ok(Rule {
            id: row.id,
            priority: row.priority,
            name: row.name.clone(),
            enabled: row.enabled != 0,
            kind,
        })
    }
}

fn parse_days<'a>(items: impl Iterator<Item = &'a str>) -> Result<[bool; 7], String> {
    let day = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .zip(FULL_DAY_NAMES)
            .position(|(short, full)| s == *short || s == full)
            .ok_or_else(|| format!("`{s}` is not a day (mon, tue, wed, thu, fri, sat, sun)"))
    };
    let mut days = [false; 7];
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    if !days.contains(&true) {
        return Err("an hours rule needs at least one day".into());
    }
    Ok(days)
}

fn days_to_stored(days: &[bool; 7]) -> String {
    DAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| **on)
        .map(|(d, _)| *d)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_hhmm(field: &str, s: &str, allow_24: bool) -> Result<u32, String> {
    let bad = || format!("{field}: `{s}` is not a time like 09:00");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (h == 24 && m == 0 && allow_24) || (h < 24 && m < 60) {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

fn fmt_hhmm(minute: i64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A target in the API: `{"user_id":12}`, `{"team_id":3}` or `{"pbx":"Queue/support"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    UserId(i64),
    TeamId(i64),
    Pbx(String),
}

impl From<TargetSpec> for Target {
    fn from(t: TargetSpec) -> Target {
        match t {
            TargetSpec::UserId(id) => Target::User(id),
            TargetSpec::TeamId(id) => Target::Team(id),
            TargetSpec::Pbx(s) => Target::Pbx(s),
        }
    }
}

impl From<Target> for TargetSpec {
    fn from(t: Target) -> TargetSpec {
        match t {
            Target::User(id) => TargetSpec::UserId(id),
            Target::Team(id) => TargetSpec::TeamId(id),
            Target::Pbx(s) => TargetSpec::Pbx(s),
        }
    }
}

/// A weekly window in the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Days or ranges: `["mon-fri"]`, `["sat", "sun"]`.
    pub days: Vec<String>,
    /// Opening time, `09:00`.
    pub from: String,
    /// Closing time, `18:00` (`00:00` or `24:00` for midnight; earlier than `from` runs past midnight).
    pub to: String,
}

/// A rule as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub id: i64,
    /// Lower runs first.
    pub priority: i64,
    pub name: String,
    /// sticky | prefix | did | hours | round_robin | least_loaded
    pub kind: String,
    pub enabled: bool,
    /// prefix rules: the E.164 prefix, `+49`.
    pub prefix: Option<String>,
    /// did rules: the dialled number.
    pub did: Option<String>,
    /// hours rules.
    pub schedule: Option<ScheduleSpec>,
    /// Where matching calls go (the team of round_robin and least_loaded rules).
    pub target: Option<TargetSpec>,
    /// hours rules: where calls outside the window go.
    pub outside_target: Option<TargetSpec>,
}

impl From<&RuleRow> for RuleView {
    fn from(r: &RuleRow) -> RuleView {
        let spec = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| Target::parse_stored(t).ok())
                .map(TargetSpec::from)
        };
        let schedule = match (&r.timezone, &r.days, r.open_minute, r.close_minute) {
            (Some(tz), Some(days), Some(o), Some(c)) if r.kind == "hours" => Some(ScheduleSpec {
                timezone: tz.clone(),
                days: days.split(',').map(str::to_owned).collect(),
                from: fmt_hhmm(o),
                to: fmt_hhmm(c),
            }),
            _ => None,
        };
        RuleView {
            id: r.id,
            priority: r.priority,
            name: r.name.clone(),
            kind: r.kind.clone(),
            enabled: r.enabled != 0,
            prefix: r.match_number.clone().filter(|_| r.kind == "prefix"),
            did: r.match_number.clone().filter(|_| r.kind == "did"),
            schedule,
            target: spec(&r.target),
            outside_target: spec(&r.outside_target),
        }
    }
}

/// A new rule, or the fields to change in one (PATCH): absent fields keep
/// their value; fields that do not belong to the (new) kind are refused.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub priority: Option<i64>,
    pub name: Option<String>,
    /// sticky | prefix | did | hours | round_robin | least_loaded
    pub kind: Option<String>,
    pub enabled: Option<bool>,
    pub prefix: Option<String>,
    pub did: Option<String>,
    pub schedule: Option<ScheduleSpec>,
    pub target: Option<TargetSpec>,
    pub outside_target: Option<TargetSpec>,
}

pub const MAX_PRIORITY: i64 = 1_000_000;

/// Checks `input` (over `base` for a change) and returns the row to store.
/// Whether users and teams exist is checked by the caller, which has the database.
pub fn build_rule(input: RuleInput, base: Option<&RuleRow>) -> Result<RuleData, String> {
    let mut d = base.map(RuleData::from).unwrap_or_default();
    if base.is_none() {
        d.enabled = true;
        d.priority = 100;
    }
    if let Some(kind) = input.kind {
        let kind = kind.trim().to_owned();
        if !KINDS.contains(&kind.as_str()) {
            return Err(format!("kind must be one of {}", KINDS.join(", ")));
        }
        if base.is_some_and(|b| b.kind != kind) {
            // A new kind starts from its own parameters only.
            d = RuleData {
                priority: d.priority,
                name: d.name,
                enabled: d.enabled,
                ..Default::default()
            };
        }
        d.kind = kind;
    } else if base.is_none() {
        return Err(format!("kind is required: one of {}", KINDS.join(", ")));
    }
    if let Some(p) = input.priority {
        if !(0..=MAX_PRIORITY).contains(&p) {
            return Err(format!("priority must be between 0 and {MAX_PRIORITY}"));
        }
        d.priority = p;
    }
    if let Some(name) = input.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("name must be 1 to 100 characters".into());
        }
        if name.chars().any(char::is_control) {
            return Err("name contains control characters".into());
        }
        d.name = name.to_owned();
    } else if base.is_none() {
        return Err("name is required".into());
    }
    if let Some(e) = input.enabled {
        d.enabled = e;
    }
    let kind = d.kind.clone();
    let only = |field: &str, kinds: &[&str], present: bool| {
        if present && !kinds.contains(&kind.as_str()) {
            Err(format!(
                "{field} does not apply to a {kind} rule (only to {})",
                kinds.join(", ")
            ))
        } else {
            Ok(())
        }
    };
    only("prefix", &["prefix"], input.prefix.is_some())?;
    only("did", &["did"], input.did.is_some())?;
    only("schedule", &["hours"], input.schedule.is_some())?;
    only("outside_target", &["hours"], input.outside_target.is_some())?;
    only(
        "target",
        &["prefix", "did", "hours", "round_robin", "least_loaded"],
        input.target.is_some(),
    )?;
    if let Some(p) = input.prefix {
        let cleaned: String = p
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        let cleaned = match cleaned.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => cleaned,
        };
        let digits = cleaned.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "prefix: `{p}` is not an international prefix such as +49 or +7495"
            ));
        }
        d.match_number = Some(cleaned);
    }
    if let Some(did) = input.did {
        let did = did.trim();
        if did.is_empty()
            || did.len() > 32
            || !did
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
            || !did.chars().any(|c| c.is_ascii_digit())
        {
            return Err(format!(
                "did: `{did}` is not a dialled number such as +4930123456 or 4000"
            ));
        }
        d.match_number = Some(did.to_owned());
    }
    if let Some(s) = input.schedule {
        let s = s.parse("schedule")?;
        d.timezone = Some(s.tz.name().to_owned());
        d.days = Some(days_to_stored(&s.days));
        d.open_minute = Some(i64::from(s.open));
        d.close_minute = Some(i64::from(s.close));
    }
    let stored = |t: TargetSpec| -> Result<String, String> {
        let t = Target::from(t);
        if let Target::Pbx(s) = &t {
            check_pbx_target(s)?;
        }
        Ok(t.to_stored())
    };
    if let Some(t) = input.target {
        d.target = Some(stored(t)?);
    }
    if let Some(t) = input.outside_target {
        d.outside_target = Some(stored(t)?);
    }
    // What each kind needs.
    match kind.as_str() {
        "sticky" => {}
        "prefix" | "did" => {
            if d.match_number.is_none() {
                return Err(format!("a {kind} rule needs `{kind}`"));
            }
            if d.target.is_none() {
                return Err(format!("a {kind} rule needs a target"));
            }
        }
        "hours" => {
            if d.timezone.is_none() {
                return Err("an hours rule needs a schedule".into());
            }
            if d.target.is_none() && d.outside_target.is_none() {
                return Err("an hours rule needs a target, an outside_target or both".into());
            }
        }
        _ => match d.target.as_deref().map(Target::parse_stored) {
            Some(Ok(Target::Team(_))) => {}
            _ => {
                return Err(format!(
                    "a {kind} rule needs a team as its target: {{\"team_id\": ID}}"
                ));
            }
        },
    }
    // What is stored must load: a rule the router would skip is refused now.
    let row = RuleRow {
        id: 0,
        priority: d.priority,
        name: d.name.clone(),
        kind: d.kind.clone(),
        enabled: i64::from(d.enabled),
        match_number: d.match_number.clone(),
        timezone: d.timezone.clone(),
        days: d.days.clone(),
        open_minute: d.open_minute,
        close_minute: d.close_minute,
        target: d.target.clone(),
        outside_target: d.outside_target.clone(),
    };
    Rule::from_row(&row, str::to_owned)?;
    Ok(d)
}

/// Users and teams a rule refers to, for the caller to check.
pub fn referenced(d: &RuleData) -> (Vec<i64>, Vec<i64>) {
    let mut users = Vec::new();
    let mut teams = Vec::new();
    for t in [&d.target, &d.outside_target].into_iter().flatten() {
        match Target::parse_stored(t) {
            Ok(Target::User(id)) => users.push(id),
            Ok(Target::Team(id)) => teams.push(id),
            _ => {}
        }
    }
    (users, teams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn berlin_weekdays() -> Schedule {
        Schedule {
            tz: chrono_tz::Europe::Berlin,
            days: parse_days(["mon-fri"].into_iter()).unwrap(),
            open: 9 * 60,
            close: 18 * 60,
        }
    }

    #[test]
    fn schedule_follows_the_local_clock_and_days() {
        let s = berlin_weekdays();
        // Monday 2026-11-23: Berlin is UTC+1 in November.
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        assert!(!s.contains(at(23, 7, 59)), "08:59 local");
        assert!(s.contains(at(23, 8, 0)), "09:00 local");
        assert!(s.contains(at(23, 16, 59)), "17:59 local");
        assert!(!s.contains(at(23, 17, 0)), "18:00 local closes");
        assert!(!s.contains(at(28, 10, 0)), "Saturday");
        // Summer time: UTC+2.
        let july = Utc.with_ymd_and_hms(2026, 7, 6, 7, 0, 0).unwrap();
        assert!(s.contains(july), "09:00 CEST");
    }

    #[test]
    fn overnight_window_belongs_to_the_day_it_opens() {
        let s = Schedule {
            tz: chrono_tz::UTC,
            days: parse_days(["fri"].into_iter()).unwrap(),
            open: 22 * 60,
            close: 6 * 60,
        };
        let at = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        assert!(s.contains(at(27, 23)), "Friday 23:00");
        assert!(s.contains(at(28, 5)), "Saturday 05:00");
        assert!(!s.contains(at(28, 23)), "Saturday 23:00");
        assert!(!s.contains(at(27, 5)), "Friday 05:00 belongs to Thursday");
    }

    fn moscow_office() -> Schedule {
        ScheduleSpec {
            timezone: "Europe/Moscow".into(),
            days: vec!["mon-fri".into()],
            from: "09:00".into(),
            to: "18:00".into(),
        }
        .parse("hours")
        .unwrap()
    }

    /// Moscow wall-clock time (UTC+3 all year) in the week of Monday 2026-11-23.
    fn msk(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Moscow
            .with_ymd_and_hms(2026, 11, day, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn open_time_inside_the_window_is_plain_time() {
        let s = moscow_office();
        let q = TimeDelta::minutes(15);
        assert_eq!(s.after_open_time(msk(23, 10, 0), q), msk(23, 10, 15));
        assert_eq!(s.after_open_time(msk(23, 9, 0), q), msk(23, 9, 15));
        assert_eq!(s.after_open_time(msk(23, 17, 45), q), msk(23, 18, 0));
        assert_eq!(
            s.after_open_time(msk(23, 10, 0), TimeDelta::zero()),
            msk(23, 10, 0)
        );
    }

    #[test]
    fn open_time_after_closing_carries_on_the_next_working_morning() {
        let s = moscow_office();
        let q = TimeDelta::minutes(15);
        assert_eq!(
            s.after_open_time(msk(23, 21, 0), q),
            msk(24, 9, 15),
            "after close"
        );
        assert_eq!(
            s.after_open_time(msk(24, 7, 0), q),
            msk(24, 9, 15),
            "before opening"
        );
        assert_eq!(
            s.after_open_time(msk(23, 17, 50), q),
            msk(24, 9, 5),
            "split over the night"
        );
        // Ten hours of a nine-hour day: the whole Monday and one hour of Tuesday.
        assert_eq!(
            s.after_open_time(msk(23, 9, 0), TimeDelta::hours(10)),
            msk(24, 10, 0)
        );
    }

    #[test]
    fn open_time_skips_the_weekend() {
        let s = moscow_office();
        let q = TimeDelta::minutes(15);
        assert_eq!(
            s.after_open_time(msk(27, 17, 55), q),
            msk(30, 9, 10),
            "Friday evening"
        );
        assert_eq!(
            s.after_open_time(msk(28, 12, 0), q),
            msk(30, 9, 15),
            "Saturday"
        );
        assert_eq!(
            s.after_open_time(msk(29, 23, 59), q),
            msk(30, 9, 15),
            "Sunday night"
        );
    }

    #[test]
    fn open_time_in_an_overnight_window() {
        // Fridays 22:00 to Saturday 06:00 only.
        let s = ScheduleSpec {
            timezone: "Europe/Moscow".into(),
            days: vec!["fri".into()],
            from: "22:00".into(),
            to: "06:00".into(),
        }
        .parse("hours")
        .unwrap();
        let q = TimeDelta::minutes(15);
        assert_eq!(s.after_open_time(msk(27, 23, 0), q), msk(27, 23, 15));
        assert_eq!(
            s.after_open_time(msk(27, 23, 50), q),
            msk(28, 0, 5),
            "past midnight"
        );
        assert_eq!(
            s.after_open_time(msk(26, 21, 0), q),
            msk(27, 22, 15),
            "Thursday"
        );
        // 10 minutes left on Saturday morning, the rest next Friday night.
        let next_friday = chrono_tz::Europe::Moscow
            .with_ymd_and_hms(2026, 12, 4, 22, 5, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(s.after_open_time(msk(28, 5, 50), q), next_friday);
    }

    #[test]
    fn open_time_across_a_clock_change() {
        // Berlin moves its clocks forward at 02:00 on Sunday 2026-03-29; a
        // round-the-clock window loses nothing and gains nothing.
        let s = ScheduleSpec {
            timezone: "Europe/Berlin".into(),
            days: vec!["mon-sun".into()],
            from: "00:00".into(),
            to: "24:00".into(),
        }
        .parse("hours")
        .unwrap();
        let from = Utc.with_ymd_and_hms(2026, 3, 29, 0, 50, 0).unwrap();
        assert_eq!(
            s.after_open_time(from, TimeDelta::minutes(30)),
            from + TimeDelta::minutes(30)
        );
    }

    proptest::proptest! {
        /// Walking minute by minute with `contains` counts exactly the open
        /// time `after_open_time` skipped over, and the last minute counted is open.
        #[test]
        fn open_time_agrees_with_the_window(
            start_min in 0i64..(14 * 1440),
            work in 1i64..700,
            overnight in proptest::bool::ANY,
        ) {
            let s = if overnight {
                ScheduleSpec {
                    timezone: "Europe/Moscow".into(),
                    days: vec!["tue".into(), "sat-sun".into()],
                    from: "20:30".into(),
                    to: "02:15".into(),
                }
                .parse("hours")
                .unwrap()
            } else {
                moscow_office()
            };
            let from = msk(23, 0, 0) + TimeDelta::minutes(start_min);
            let due = s.after_open_time(from, TimeDelta::minutes(work));
            let mut counted = 0;
            let mut t = from;
            while t < due {
                if s.contains(t) {
                    counted += 1;
                }
                t += TimeDelta::minutes(1);
            }
            proptest::prop_assert_eq!(counted, work);
            proptest::prop_assert!(s.contains(due - TimeDelta::minutes(1)));
        }
    }

    #[test]
    fn schedule_specs_name_the_bad_field() {
        let spec = |tz: &str, day: &str, from: &str, to: &str| ScheduleSpec {
            timezone: tz.into(),
            days: vec![day.into()],
            from: from.into(),
            to: to.into(),
        };
        for (s, needle) in [
            (spec("Mars/Base", "mon", "09:00", "18:00"), "hours.timezone"),
            (spec("UTC", "funday", "09:00", "18:00"), "hours.days"),
            (spec("UTC", "mon", "9", "18:00"), "hours.from"),
            (spec("UTC", "mon", "09:00", "25:00"), "hours.to"),
            (spec("UTC", "mon", "09:00", "09:00"), "must differ"),
        ] {
            let err = s.parse("hours").unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn closing_at_00_00_is_the_end_of_the_day_and_loads() {
        let d = build_rule(
            RuleInput {
                kind: Some("hours".into()),
                name: Some("Evening".into()),
                schedule: Some(ScheduleSpec {
                    timezone: "UTC".into(),
                    days: vec!["mon-fri".into()],
                    from: "17:00".into(),
                    to: "00:00".into(),
                }),
                target: Some(TargetSpec::Pbx("Queue/evening".into())),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(d.close_minute, Some(1440));
        // A row written with 0 by an earlier version loads as 24:00 too.
        let mut row = RuleRow {
            id: 1,
            priority: d.priority,
            name: d.name.clone(),
            kind: d.kind.clone(),
            enabled: 1,
            match_number: None,
            timezone: d.timezone.clone(),
            days: d.days.clone(),
            open_minute: d.open_minute,
            close_minute: Some(0),
            target: d.target.clone(),
            outside_target: None,
        };
        let rule = Rule::from_row(&row, str::to_owned).unwrap();
        let RuleKind::Hours { schedule, .. } = rule.kind else {
            panic!("not an hours rule");
        };
        assert_eq!(schedule.close, 1440);
        let monday = |h, m| Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap();
        assert!(schedule.contains(monday(23, 59)));
        assert!(!schedule.contains(monday(16, 59)));
        // A stored row that cannot load is refused when it is changed.
        row.close_minute = Some(2000);
        let err = build_rule(
            RuleInput {
                name: Some("Renamed".into()),
                ..Default::default()
            },
            Some(&row),
        )
        .unwrap_err();
        assert!(err.contains("opening and closing"), "{err}");
    }

    #[test]
    fn days_accept_ranges_and_names_but_not_words() {
        assert_eq!(
            parse_days(["sat-mon"].into_iter()).unwrap(),
            [true, false, false, false, false, true, true]
        );
        assert_eq!(
            parse_days(["Monday", "wed"].into_iter()).unwrap(),
            [true, false, true, false, false, false, false]
        );
        assert!(parse_days(["monkey"].into_iter()).is_err());
        assert!(parse_days(["ab€"].into_iter()).is_err());
        assert!(parse_days(["€€€-мон"].into_iter()).is_err());
        assert!(parse_days([""].into_iter()).is_err());
    }

    #[test]
    fn build_checks_each_kind() {
        let ok = build_rule(
            RuleInput {
                kind: Some("prefix".into()),
                name: Some("Germany".into()),
                prefix: Some("0049".into()),
                target: Some(TargetSpec::Pbx("Queue/de".into())),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(ok.match_number.as_deref(), Some("+49"));
        assert_eq!(ok.target.as_deref(), Some("pbx:Queue/de"));
        assert!(ok.enabled);
        for (input, needle) in [
            (
                RuleInput {
                    kind: Some("prefix".into()),
                    name: Some("x".into()),
                    prefix: Some("49".into()),
                    target: Some(TargetSpec::Pbx("Queue/de".into())),
                    ..Default::default()
                },
                "prefix",
            ),
            (
                RuleInput {
                    kind: Some("round_robin".into()),
                    name: Some("x".into()),
                    target: Some(TargetSpec::UserId(1)),
                    ..Default::default()
                },
                "team",
            ),
            (
                RuleInput {
                    kind: Some("sticky".into()),
                    name: Some("x".into()),
                    did: Some("4000".into()),
                    ..Default::default()
                },
                "did does not apply",
            ),
            (
                RuleInput {
                    kind: Some("did".into()),
                    name: Some("x".into()),
                    did: Some("4000".into()),
                    target: Some(TargetSpec::Pbx("Queue/a\"b".into())),
                    ..Default::default()
                },
                "may not contain",
            ),
            (
                RuleInput {
                    kind: Some("hours".into()),
                    name: Some("x".into()),
                    schedule: Some(ScheduleSpec {
                        timezone: "Mars/Olympus".into(),
                        days: vec!["mon".into()],
                        from: "09:00".into(),
                        to: "18:00".into(),
                    }),
                    target: Some(TargetSpec::Pbx("Queue/a".into())),
                    ..Default::default()
                },
                "time zone",
            ),
            (
                RuleInput {
                    kind: Some("teleport".into()),
                    name: Some("x".into()),
                    ..Default::default()
                },
                "kind must be",
            ),
        ] {
            let err = build_rule(input, None).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn stored_rows_round_trip() {
        let d = build_rule(
            RuleInput {
                kind: Some("hours".into()),
                name: Some("Office".into()),
                schedule: Some(ScheduleSpec {
                    timezone: "Europe/Berlin".into(),
                    days: vec!["mon-fri".into()],
                    from: "09:00".into(),
                    to: "18:00".into(),
                }),
                outside_target: Some(TargetSpec::Pbx("Queue/night".into())),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let row = RuleRow {
            id: 7,
            priority: d.priority,
            name: d.name.clone(),
            kind: d.kind.clone(),
            enabled: 1,
            match_number: d.match_number.clone(),
            timezone: d.timezone.clone(),
            days: d.days.clone(),
            open_minute: d.open_minute,
            close_minute: d.close_minute,
            target: d.target.clone(),
            outside_target: d.outside_target.clone(),
        };
        let rule = Rule::from_row(&row, str::to_owned).unwrap();
        assert_eq!(
            rule.kind,
            RuleKind::Hours {
                schedule: berlin_weekdays(),
                inside: None,
                outside: Some(Target::Pbx("Queue/night".into())),
            }
        );
        let view = RuleView::from(&row);
        assert_eq!(
            view.schedule.unwrap().days,
            ["mon", "tue", "wed", "thu", "fri"]
        );
    }
}
