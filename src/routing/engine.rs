//! The routing decision: a pure function of the rule set, the call and a
//! small context (who owns the caller, who is available, who is busy, who is
//! in a team, what time it is). Only the round-robin turn is remembered
//! between calls.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::rules::{Rule, RuleKind, Target};
use crate::config::DevicePattern;

/// A user as routing needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUser {
    pub id: i64,
    pub login: String,
    pub extension: Option<String>,
    pub active: bool,
}

/// The CRM record behind the caller and its owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerOwner {
    pub contact_id: Option<i64>,
    pub company_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// Owner of the contact or company, or manager of the open lead.
    pub owner_id: Option<i64>,
}

/// What the engine asks about the world.
pub trait RouteContext {
    /// The caller's contact, company or open lead and its owner.
    fn caller_owner(&self) -> Option<CallerOwner>;
    fn user(&self, id: i64) -> Option<&RouteUser>;
    /// Ready to take a call (not paused, offline or on a call).
    fn is_available(&self, user_id: i64) -> bool;
    fn active_calls(&self, user_id: i64) -> usize;
    /// Member user ids, ascending.
    fn team_members(&self, team_id: i64) -> &[i64];
    fn now(&self) -> DateTime<Utc>;
}

/// What is being routed: a ringing call needs a phone to ring (a user with an
/// extension, or a PBX target); a lead needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Call,
    Lead,
}

/// The call being routed.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The caller in E.164, when it is an outside number.
    pub caller_e164: Option<&'a str>,
    /// The dialled number in the form rules compare (see `did_key`).
    pub did_key: Option<&'a str>,
    pub purpose: Purpose,
}

/// The evaluated rules plus what applies when none matches.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Enabled and disabled, in priority order.
    pub rules: Vec<Rule>,
    /// Target when no rule yields one (`routing.default_target`).
    pub default_target: Option<String>,
    /// How a user's extension is dialled: `PJSIP/{ext}` → `PJSIP/101`.
    pub device: DevicePattern,
}

impl RuleSet {
    pub fn new(
        mut rules: Vec<Rule>,
        default_target: Option<String>,
        device: &DevicePattern,
    ) -> Self {
        rules.sort_by_key(|r| (r.priority, r.id));
        RuleSet {
            rules,
            default_target,
            device: device.clone(),
        }
    }

    pub fn has_did_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && matches!(r.kind, RuleKind::Did { .. }))
    }
}

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedBy {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
}

/// The outcome of routing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the PBX dials, e.g. `PJSIP/101` or `Queue/support`; `None` when
    /// nothing matched and no default is configured.
    pub target: Option<String>,
    /// The user chosen, when the target is a user.
    pub user_id: Option<i64>,
    pub rule: Option<DecidedBy>,
    /// Why, for people reading logs.
    pub reason: String,
}

/// The round-robin turn of each team: the member picked last.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: Mutex<HashMap<i64, i64>>,
}

impl RoundRobin {
    /// Picks among `members` (ascending ids) the first `eligible` one after the
    /// member picked last, preferring the lowest `load`; remembers the pick.
    pub(crate) fn pick(
        &self,
        team: i64,
        members: &[i64],
        eligible: impl Fn(i64) -> bool,
        load: impl Fn(i64) -> usize,
    ) -> Option<i64> {
        if members.is_empty() {
            return None;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let start = match last.get(&team) {
            // First member with a higher id than the last pick (members may change).
            Some(&prev) => members.partition_point(|&m| m <= prev) % members.len(),
            None => 0,
        };
        let mut best: Option<(usize, i64)> = None;
        for i in 0..members.len() {
            let m = members[(start + i) % members.len()];
            if !eligible(m) {
                continue;
            }
            let l = load(m);
            if best.is_none_or(|(bl, _)| l < bl) {
                best = Some((l, m));
                if l == 0 {
                    break;
                }
            }
        }
        let (_, chosen) = best?;
        last.insert(team, chosen);
        Some(chosen)
    }

    /// Forgets every turn (tests, benchmarks).
    pub fn reset(&self) {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

struct Eval<'a, C: RouteContext> {
    set: &'a RuleSet,
    req: &'a RouteRequest<'a>,
    ctx: &'a C,
    rr: &'a RoundRobin,
}

impl<C: RouteContext> Eval<'_, C> {
    /// Whether this user can take what is being routed: a call needs an
    /// active user whose phone is free; a lead is work for later, so any
    /// active user takes it, on a call or not.
    fn usable(&self, id: i64) -> Option<&RouteUser> {
        let u = self.ctx.user(id)?;
        if !u.active {
            return None;
        }
        if self.req.purpose == Purpose::Call
            && (u.extension.is_none() || !self.ctx.is_available(id))
        {
            return None;
        }
        Some(u)
    }

    fn user_target(&self, u: &RouteUser) -> String {
        match &u.extension {
            Some(ext) => self.set.device.device(ext),
            None => String::new(),
        }
    }

    fn pick_in_team(&self, team: i64, by_load: bool) -> Option<(String, i64)> {
        let members = self.ctx.team_members(team);
        let id = self.rr.pick(
            team,
            members,
            |m| self.usable(m).is_some(),
            |m| {
                if by_load { self.ctx.active_calls(m) } else { 0 }
            },
        )?;
        let u = self.usable(id)?;
        Some((self.user_target(u), id))
    }

    /// Resolves a rule's target; `None` when nobody there can take the call.
    fn resolve(&self, t: &Target) -> Option<(String, Option<i64>)> {
        match t {
            Target::Pbx(s) => match self.req.purpose {
                Purpose::Call => Some((s.clone(), None)),
                Purpose::Lead => None,
            },
            Target::User(id) => self.usable(*id).map(|u| (self.user_target(u), Some(u.id))),
            Target::Team(team) => self.pick_in_team(*team, false).map(|(t, id)| (t, Some(id))),
        }
    }

    fn rule(&self, rule: &Rule) -> Option<(String, Option<i64>, String)> {
        match &rule.kind {
            RuleKind::Sticky => {
                let owner = self.ctx.caller_owner()?;
                let id = owner.owner_id?;
                let u = self.usable(id)?;
                let of = match (owner.contact_id, owner.company_id, owner.lead_id) {
                    (Some(c), _, _) => format!("owner of contact {c}"),
                    (None, Some(c), _) => format!("owner of company {c}"),
                    (None, None, Some(l)) => format!("manager of lead {l}"),
                    _ => "owner of the caller".to_owned(),
                };
                Some((self.user_target(u), Some(id), of))
            }
            RuleKind::Prefix { prefix, target } => {
                let caller = self.req.caller_e164?;
                if !caller.starts_with(prefix.as_str()) {
                    return None;
                }
                let (t, u) = self.resolve(target)?;
                Some((t, u, format!("caller starts with {prefix}")))
            }
            RuleKind::Did { key, target } => {
                if self.req.did_key != Some(key.as_str()) {
                    return None;
                }
                let (t, u) = self.resolve(target)?;
                Some((t, u, format!("dialled number {key}")))
            }
            RuleKind::Hours {
                schedule,
                inside,
                outside,
            } => {
                let (target, word) = if schedule.contains(self.ctx.now()) {
                    (inside.as_ref()?, "inside hours")
                } else {
                    (outside.as_ref()?, "outside hours")
                };
                let (t, u) = self.resolve(target)?;
                Some((t, u, word.to_owned()))
            }
            RuleKind::RoundRobin { team } => {
                let (t, u) = self.pick_in_team(*team, false)?;
                Some((t, Some(u), format!("next in turn in team {team}")))
            }
            RuleKind::LeastLoaded { team } => {
                let (t, u) = self.pick_in_team(*team, true)?;
                let calls = self.ctx.active_calls(u);
                Some((
                    t,
                    Some(u),
                    format!("least loaded in team {team} ({calls} active calls)"),
                ))
            }
        }
    }
}

/// Evaluates the enabled rules in priority order; the first that yields a
/// target wins, else the default target.
pub fn decide(
    set: &RuleSet,
    req: &RouteRequest<'_>,
    ctx: &impl RouteContext,
    rr: &RoundRobin,
) -> Decision {
    let eval = Eval { set, req, ctx, rr };
    for rule in set.rules.iter().filter(|r| r.enabled) {
        if let Some((target, user_id, why)) = eval.rule(rule) {
            return Decision {
                target: Some(target),
                user_id,
                rule: Some(DecidedBy {
                    id: rule.id,
                    name: rule.name.clone(),
                    kind: rule.kind.name(),
                }),
                reason: format!("{}: {why}", rule.name),
            };
        }
    }
    match (&set.default_target, req.purpose) {
        (Some(t), Purpose::Call) => Decision {
            target: Some(t.clone()),
            user_id: None,
            rule: None,
            reason: "no rule matched: default target".to_owned(),
        },
        _ => Decision {
            target: None,
            user_id: None,
            rule: None,
            reason: "no rule matched and no default target is configured".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::rules::Schedule;
    use chrono::TimeZone;
    use std::collections::{HashMap, HashSet};

    struct World {
        owner: Option<CallerOwner>,
        users: HashMap<i64, RouteUser>,
        away: HashSet<i64>,
        calls: HashMap<i64, usize>,
        teams: HashMap<i64, Vec<i64>>,
        now: DateTime<Utc>,
    }

    impl World {
        fn new() -> World {
            let mut users = HashMap::new();
            for (id, ext) in [
                (1, Some("101")),
                (2, Some("102")),
                (3, Some("103")),
                (4, None),
            ] {
                users.insert(
                    id,
                    RouteUser {
                        id,
                        login: format!("u{id}"),
                        extension: ext.map(str::to_owned),
                        active: true,
                    },
                );
            }
            World {
                owner: None,
                users,
                away: HashSet::new(),
                calls: HashMap::new(),
                teams: HashMap::from([(10, vec![1, 2, 3]), (20, vec![4])]),
                // Monday 2026-11-23 10:00 UTC.
                now: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            }
        }
    }

    impl RouteContext for World {
        fn caller_owner(&self) -> Option<CallerOwner> {
            self.owner
        }
        fn user(&self, id: i64) -> Option<&RouteUser> {
            self.users.get(&id)
        }
        fn is_available(&self, id: i64) -> bool {
            !self.away.contains(&id)
        }
        fn active_calls(&self, id: i64) -> usize {
            self.calls.get(&id).copied().unwrap_or(0)
        }
        fn team_members(&self, team: i64) -> &[i64] {
            self.teams.get(&team).map(Vec::as_slice).unwrap_or(&[])
        }
        fn now(&self) -> DateTime<Utc> {
            self.now
        }
    }

    fn rule(id: i64, priority: i64, kind: RuleKind) -> Rule {
        Rule {
            id,
            priority,
            name: format!("r{id}"),
            enabled: true,
            kind,
        }
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet::new(
            rules,
            Some("Queue/support".into()),
            &DevicePattern::default(),
        )
    }

    fn call<'a>(caller: Option<&'a str>, did: Option<&'a str>) -> RouteRequest<'a> {
        RouteRequest {
            caller_e164: caller,
            did_key: did,
            purpose: Purpose::Call,
        }
    }

    #[test]
    fn sticky_sends_the_caller_to_their_owner_when_available() {
        let mut w = World::new();
        w.owner = Some(CallerOwner {
            contact_id: Some(5),
            owner_id: Some(2),
            ..Default::default()
        });
        let s = set(vec![rule(1, 10, RuleKind::Sticky)]);
        let rr = RoundRobin::default();
        let d = decide(&s, &call(Some("+491511234567"), None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("PJSIP/102"));
        assert_eq!(d.user_id, Some(2));
        assert!(d.reason.contains("owner of contact 5"), "{}", d.reason);
        w.away.insert(2);
        let d = decide(&s, &call(Some("+491511234567"), None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/support"));
        assert_eq!(d.rule, None);
    }

    #[test]
    fn first_matching_rule_in_priority_order_wins() {
        let w = World::new();
        let s = set(vec![
            rule(
                1,
                50,
                RuleKind::Prefix {
                    prefix: "+4".into(),
                    target: Target::Pbx("Queue/europe".into()),
                },
            ),
            rule(
                2,
                10,
                RuleKind::Prefix {
                    prefix: "+49".into(),
                    target: Target::User(3),
                },
            ),
            rule(
                3,
                5,
                RuleKind::Did {
                    key: "+4930999".into(),
                    target: Target::Pbx("Queue/vip".into()),
                },
            ),
        ]);
        let rr = RoundRobin::default();
        let d = decide(&s, &call(Some("+4930123"), None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("PJSIP/103"));
        assert_eq!(d.rule.as_ref().unwrap().id, 2);
        let d = decide(&s, &call(Some("+4930123"), Some("+4930999")), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/vip"));
        let d = decide(&s, &call(Some("+4130123"), None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/europe"));
        let d = decide(&s, &call(None, None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/support"));
        assert!(d.reason.contains("default"));
    }

    #[test]
    fn disabled_rules_and_unusable_users_fall_through() {
        let mut w = World::new();
        let mut off = rule(
            1,
            1,
            RuleKind::Prefix {
                prefix: "+".into(),
                target: Target::Pbx("Queue/off".into()),
            },
        );
        off.enabled = false;
        let s = set(vec![
            off,
            rule(
                2,
                2,
                RuleKind::Prefix {
                    prefix: "+".into(),
                    target: Target::User(4),
                },
            ),
            rule(
                3,
                3,
                RuleKind::Prefix {
                    prefix: "+".into(),
                    target: Target::User(1),
                },
            ),
        ]);
        let rr = RoundRobin::default();
        // User 4 has no extension: fine for a lead, not for a call.
        let d = decide(&s, &call(Some("+7916"), None), &w, &rr);
        assert_eq!(d.user_id, Some(1));
        let lead = RouteRequest {
            purpose: Purpose::Lead,
            ..call(Some("+7916"), None)
        };
        assert_eq!(decide(&s, &lead, &w, &rr).user_id, Some(4));
        w.users.get_mut(&1).unwrap().active = false;
        let d = decide(&s, &call(Some("+7916"), None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/support"));
    }

    #[test]
    fn round_robin_rotates_fairly_and_skips_the_unavailable() {
        let mut w = World::new();
        let s = set(vec![rule(1, 1, RuleKind::RoundRobin { team: 10 })]);
        let rr = RoundRobin::default();
        let picks: Vec<i64> = (0..6)
            .map(|_| decide(&s, &call(None, None), &w, &rr).user_id.unwrap())
            .collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        w.away.insert(2);
        let picks: Vec<i64> = (0..4)
            .map(|_| decide(&s, &call(None, None), &w, &rr).user_id.unwrap())
            .collect();
        assert_eq!(picks, [1, 3, 1, 3]);
        // Leaving the team mid-turn does not break the rotation.
        w.away.clear();
        w.teams.insert(10, vec![2, 3]);
        let picks: Vec<i64> = (0..3)
            .map(|_| decide(&s, &call(None, None), &w, &rr).user_id.unwrap())
            .collect();
        assert_eq!(picks, [2, 3, 2]);
        // Nobody available: the next rule (here the default).
        w.away.extend([2, 3]);
        let d = decide(&s, &call(None, None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/support"));
    }

    #[test]
    fn least_loaded_prefers_fewest_calls_and_rotates_ties() {
        let mut w = World::new();
        w.calls.insert(1, 2);
        w.calls.insert(2, 1);
        w.calls.insert(3, 1);
        let s = set(vec![rule(1, 1, RuleKind::LeastLoaded { team: 10 })]);
        let rr = RoundRobin::default();
        let a = decide(&s, &call(None, None), &w, &rr).user_id.unwrap();
        let b = decide(&s, &call(None, None), &w, &rr).user_id.unwrap();
        assert_eq!((a, b), (2, 3));
        w.calls.insert(3, 0);
        assert_eq!(decide(&s, &call(None, None), &w, &rr).user_id, Some(3));
        assert!(
            decide(&s, &call(None, None), &w, &rr)
                .reason
                .contains("0 active calls")
        );
    }

    #[test]
    fn hours_pick_inside_or_outside_target() {
        let mut w = World::new();
        let s = set(vec![rule(
            1,
            1,
            RuleKind::Hours {
                schedule: Schedule {
                    tz: chrono_tz::Europe::Berlin,
                    days: [true, true, true, true, true, false, false],
                    open: 9 * 60,
                    close: 18 * 60,
                },
                inside: Some(Target::Team(10)),
                outside: Some(Target::Pbx("Queue/night".into())),
            },
        )]);
        let rr = RoundRobin::default();
        let d = decide(&s, &call(None, None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("PJSIP/101"));
        assert!(d.reason.contains("inside hours"));
        w.now = Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap();
        let d = decide(&s, &call(None, None), &w, &rr);
        assert_eq!(d.target.as_deref(), Some("Queue/night"));
        assert!(d.reason.contains("outside hours"));
    }

    #[test]
    fn a_lead_goes_to_its_person_even_while_they_are_on_a_call() {
        let mut w = World::new();
        w.away.insert(1);
        let s = set(vec![rule(
            1,
            1,
            RuleKind::Did {
                key: "+74957654321".into(),
                target: Target::User(1),
            },
        )]);
        let rr = RoundRobin::default();
        let lead = RouteRequest {
            purpose: Purpose::Lead,
            ..call(Some("+79161234567"), Some("+74957654321"))
        };
        assert_eq!(decide(&s, &lead, &w, &rr).user_id, Some(1));
        // The call itself does not ring a busy phone.
        let d = decide(
            &s,
            &call(Some("+79161234567"), Some("+74957654321")),
            &w,
            &rr,
        );
        assert_eq!(d.target.as_deref(), Some("Queue/support"));
        // Another dialled number: the rule does not apply to the lead either.
        let other = RouteRequest {
            purpose: Purpose::Lead,
            ..call(Some("+79161234567"), Some("+74951234567"))
        };
        assert_eq!(decide(&s, &other, &w, &rr).user_id, None);
    }

    #[test]
    fn no_default_gives_no_target() {
        let w = World::new();
        let s = RuleSet::new(vec![], None, &DevicePattern::default());
        let d = decide(&s, &call(None, None), &w, &RoundRobin::default());
        assert_eq!(d.target, None);
    }
}
