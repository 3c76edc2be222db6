//! AMI queue-member and device-state events → PBX-neutral `PbxSignal`s.
//!
//! Owns the reading of `QueueMember` (the items of a `QueueStatus` answer),
//! `QueueMemberAdded`, `QueueMemberRemoved`, `QueueMemberPause`,
//! `QueueMemberStatus`, `DeviceStateChange` and `ContactStatus`. Which user
//! a member or device is, is not known here (`crate::presence` asks the
//! device map).

use super::codec::Message;
use crate::presence::{PbxSignal, PhoneProblem, QueueMember};

/// A queue member from an event or a `QueueStatus` item: Asterisk 13 to 22
/// name the interface `Interface` in events and `Location` in the status
/// list, the pause reason `PausedReason` (13: `Reason` in `QueueMemberPause`).
pub fn member(m: &Message) -> Option<QueueMember> {
    let queue = m.get("Queue").filter(|q| !q.is_empty())?;
    let interface = m
        .get("Interface")
        .or_else(|| m.get("Location"))
        .filter(|i| !i.is_empty())?;
    let paused = m
        .get("Paused")
        .is_some_and(|p| p == "1" || p.eq_ignore_ascii_case("true"));
    let reason = m
        .get("PausedReason")
        .or_else(|| m.get("Reason"))
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.trim().chars().take(100).collect());
    Some(QueueMember {
        queue: queue.to_owned(),
        interface: interface.to_owned(),
        state_interface: m
            .get("StateInterface")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        paused,
        reason,
    })
}

/// The signal an event carries, if it is one of those this module reads.
pub fn signal(m: &Message) -> Option<PbxSignal> {
    match m.event()? {
        "QueueMemberAdded" | "QueueMemberPause" | "QueueMemberStatus" | "QueueMemberPaused" => {
            member(m).map(PbxSignal::Member)
        }
        "QueueMemberRemoved" => member(m).map(|q| PbxSignal::MemberGone {
            queue: q.queue,
            interface: q.interface,
        }),
        "DeviceStateChange" => {
            let device = m.get("Device").filter(|d| d.contains('/'))?;
            let problem = match m.get("State")? {
                "UNAVAILABLE" => Some(PhoneProblem::Unavailable),
                "NOT_INUSE" | "INUSE" | "BUSY" | "RINGING" | "RINGINUSE" | "ONHOLD" => None,
                _ => return None,
            };
            Some(PbxSignal::Phone {
                device: device.to_owned(),
                problem,
            })
        }
        "ContactStatus" => {
            // A permanent contact (`contact =` in the AOR) has no endpoint name.
            let endpoint = m
                .get("EndpointName")
                .filter(|e| !e.is_empty())
                .or_else(|| m.get("AOR").filter(|e| !e.is_empty()))?;
            let problem = match m.get("ContactStatus")? {
                s if s.eq_ignore_ascii_case("Unreachable") => Some(PhoneProblem::Unreachable),
                s if s.eq_ignore_ascii_case("Removed") => Some(PhoneProblem::Unregistered),
                s if s.eq_ignore_ascii_case("Reachable")
                    || s.eq_ignore_ascii_case("Created")
                    || s.eq_ignore_ascii_case("NonQualified") =>
                {
                    None
                }
                _ => return None,
            };
            Some(PbxSignal::Phone {
                device: format!("PJSIP/{endpoint}"),
                problem,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_and_phone_states() {
        let m = Message::from_pairs([
            ("Event", "QueueMemberPause"),
            ("Queue", "sales"),
            ("Interface", "Local/101@from-queue/n"),
            ("StateInterface", "PJSIP/101"),
            ("Paused", "1"),
            ("PausedReason", "phonebreak"),
        ]);
        let Some(PbxSignal::Member(q)) = signal(&m) else {
            panic!("a member");
        };
        assert_eq!(q.interface, "Local/101@from-queue/n");
        assert_eq!(q.state_interface.as_deref(), Some("PJSIP/101"));
        assert!(q.paused);
        assert_eq!(q.reason.as_deref(), Some("phonebreak"));
        let c = Message::from_pairs([
            ("Event", "ContactStatus"),
            ("AOR", "101"),
            ("EndpointName", "101"),
            ("ContactStatus", "Unreachable"),
        ]);
        assert_eq!(
            signal(&c),
            Some(PbxSignal::Phone {
                device: "PJSIP/101".into(),
                problem: Some(PhoneProblem::Unreachable)
            })
        );
        let d = Message::from_pairs([
            ("Event", "DeviceStateChange"),
            ("Device", "Queue:sales_avail"),
            ("State", "NOT_INUSE"),
        ]);
        assert_eq!(signal(&d), None);
        assert_eq!(
            signal(&Message::from_pairs([("Event", "QueueMemberPause")])),
            None
        );
    }
}
