//! Bursts of AMI traffic for load tests: many calls ringing agents' phones
//! at once, padded with the variable settings a real dialplan sends in
//! between, streamed by the fake Asterisk as fast as the socket takes them.

use ringside::telephony::ami::codec::Message;

/// A burst and what it should make happen.
pub struct Burst {
    /// The events, in order (times do not matter at full pace).
    pub events: Vec<(u64, Message)>,
    /// Each call's id (`Linkedid`) and the extension its ring is for.
    pub rings: Vec<(String, String)>,
}

/// `calls` inbound calls from the trunk, each ringing one of `agents` in
/// turn and left ringing, in about `total` messages (`VarSet`s fill the
/// gap between each call's `Newchannel` and its `DialBegin`).
pub fn ringing(calls: usize, agents: &[&str], total: usize) -> Burst {
    let filler = (total / calls.max(1)).saturating_sub(2);
    let mut events = Vec::with_capacity(calls * (filler + 2));
    let mut rings = Vec::with_capacity(calls);
    for i in 0..calls {
        let ext = agents[i % agents.len()];
        let uid = format!("1795500000.{}", 2 * i + 2);
        let dest_uid = format!("1795500000.{}", 2 * i + 3);
        let trunk = format!("PJSIP/trunk-{:08x}", 2 * i + 2);
        let phone = format!("PJSIP/{ext}-{:08x}", 2 * i + 3);
        let caller = format!("+7916{:07}", 1_000_000 + i);
        let channel = |event: &'static str| -> Vec<(&'static str, String)> {
            vec![
                ("Event", event.to_owned()),
                ("Privilege", "call,all".to_owned()),
                ("Channel", trunk.clone()),
                ("ChannelState", "4".to_owned()),
                ("ChannelStateDesc", "Ring".to_owned()),
                ("CallerIDNum", caller.clone()),
                ("CallerIDName", "<unknown>".to_owned()),
                ("Context", "from-trunk".to_owned()),
                ("Exten", "74957654321".to_owned()),
                ("Priority", "1".to_owned()),
                ("Uniqueid", uid.clone()),
                ("Linkedid", uid.clone()),
            ]
        };
        let msg = |pairs: Vec<(&'static str, String)>| {
            Message::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        };
        events.push((0, msg(channel("Newchannel"))));
        for n in 0..filler {
            let mut pairs = channel("VarSet");
            pairs.push(("Variable", format!("PJSIP_HEADER_{n}")));
            pairs.push(("Value", format!("value {n}")));
            events.push((0, msg(pairs)));
        }
        let mut dial = channel("DialBegin");
        dial.extend([
            ("DestChannel", phone.clone()),
            ("DestChannelState", "0".to_owned()),
            ("DestChannelStateDesc", "Down".to_owned()),
            ("DestCallerIDNum", ext.to_owned()),
            ("DestContext", "from-agents".to_owned()),
            ("DestUniqueid", dest_uid.clone()),
            ("DestLinkedid", uid.clone()),
            ("DialString", ext.to_owned()),
        ]);
        events.push((0, msg(dial)));
        rings.push((uid, ext.to_owned()));
    }
    Burst { events, rings }
}
