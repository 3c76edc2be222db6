//! The AMI link when it breaks, against the real Asterisk: cut by a proxy
//! while one call is up (it ends inside the cut) and another comes and goes
//! inside it, with Asterisk's `cdr_custom` writing the shipped
//! `dialplans/cdr_custom.conf`; and an account without the class the resync
//! needs.

use std::time::Instant;

use crate::calls::DIRECT_101;
use crate::harness::{AMI_USER, Conf, Pbx, Proxy, Ringside, items, wait_for};
use crate::require_asterisk;

/// The shipped PBX with `cdr_custom` on and the shipped mapping.
fn with_cdr() -> Conf {
    let mut conf = Conf::shipped();
    conf.replace("modules.conf", "noload => cdr_custom.so\n", "");
    let mapping =
        std::fs::read_to_string(crate::harness::root().join("dialplans/cdr_custom.conf")).unwrap();
    conf.set("cdr_custom.conf", &mapping);
    conf
}

fn find<'a>(calls: &'a [serde_json::Value], caller: &str) -> Vec<&'a serde_json::Value> {
    calls.iter().filter(|c| c["caller"] == caller).collect()
}

/// A call up when the proxy cuts the link ends inside the cut, and a busy
/// call comes and goes inside it: after the link is back the first has its
/// real talk time (the phone's 6 s, not the outage), the second is logged
/// once with its lead and callback, and a second cut changes nothing.
#[tokio::test]
async fn calls_inside_an_ami_cut_get_their_real_times_from_the_cdr() {
    require_asterisk!();
    let pbx = Pbx::start("ami_cut_cdr", &with_cdr()).await;
    // Asterisk writes into its log directory; the bundle does not make it.
    let cdr_dir = pbx.state().join("log/cdr-custom");
    std::fs::create_dir_all(&cdr_dir).unwrap();
    let cdr_file = cdr_dir.join("ringside.json").display().to_string();
    let proxy = Proxy::start(&pbx.ami_addr()).await;
    let url = format!("ami://{AMI_USER}:ringside-test@{}", proxy.addr);
    let rs = Ringside::start(
        &pbx,
        &[
            ("RINGSIDE_AMI_URL", url.as_str()),
            ("RINGSIDE_AMI_CDR_FILE", cdr_file.as_str()),
        ],
    )
    .await;
    let anna = rs.agent("101");

    let mut phone = pbx.phone("101", "agent_answer_hangup_6s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let ring = anna.wait_frame("call.ringing", |_| true).await;
    let up_id = ring["call_id"].as_str().unwrap().to_owned();
    anna.wait_frame("call.answered", |v| v["call_id"] == up_id.as_str())
        .await;
    proxy.cut();
    let cut_at = Instant::now();
    assert!(phone.finished().await, "101's phone hung up inside the cut");
    let _ = caller.finished().await;
    // A second caller, 101 busy: in and out while the link is cut.
    let mut busy = pbx.phone("101", "agent_busy", 1);
    let mut second = pbx.call(DIRECT_101, "+4930999888", "");
    assert!(busy.finished().await, "101's busy phone");
    let _ = second.finished().await;
    let outage = cut_at.elapsed().as_secs_f64();
    proxy.restore();

    let up = rs.wait_call(&up_id).await;
    assert_eq!(up["times"], "recovered", "{up}");
    assert_eq!(up["disposition"], "answered", "{up}");
    let talk = up["talk_s"].as_f64().unwrap();
    eprintln!("call up at the cut: talk {talk} s after a {outage:.1}-s cut");
    // The phone talks 6 s (SIPp's own pace adds a little).
    assert!(
        (5.5..7.5).contains(&talk),
        "talk {talk} after a {outage:.1}-s cut: {up}"
    );

    // Its row, once on the lead made for the new caller.
    let calls = rs
        .wait_api("/api/v1/calls?limit=200", |v| {
            find(&items(v), "+4930999888")
                .iter()
                .any(|c| c["lead_id"].is_i64())
        })
        .await;
    let calls = items(&calls);
    let inside = find(&calls, "+4930999888");
    assert_eq!(inside.len(), 1, "{calls:?}");
    let inside = inside[0].clone();
    assert_eq!(inside["times"], "recovered", "{inside}");
    assert_eq!(inside["disposition"], "busy", "{inside}");
    assert_eq!(inside["rang"], serde_json::json!(["101"]), "{inside}");
    let inside_id = inside["call_id"].as_str().unwrap().to_owned();
    let lead = inside["lead_id"].as_i64().expect("the new caller's lead");
    let tasks = rs
        .wait_api("/api/v1/tasks?done=false", |v| {
            items(v).iter().any(|t| t["call_id"] == inside_id.as_str())
        })
        .await;
    let callbacks: Vec<_> = items(&tasks)
        .into_iter()
        .filter(|t| t["call_id"] == inside_id.as_str())
        .collect();
    assert_eq!(callbacks.len(), 1, "{tasks}");
    assert_eq!(callbacks[0]["lead_id"], lead, "{tasks}");

    // Cut again and come back: nothing is logged twice.
    proxy.cut();
    proxy.restore();
    rs.wait_ami_up(&pbx).await;
    let count = |sql: &'static str| {
        let db = rs.app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.pool)
                .await
                .unwrap()
        }
    };
    wait_for("Ringside logged in again", || async {
        let v = rs
            .app
            .client
            .get(rs.app.url("/healthz"))
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()?;
        (v["ami"]["logins"].as_i64() >= Some(3) && v["ami"]["status"] == "ok").then_some(())
    })
    .await;
    assert_eq!(count("SELECT COUNT(*) FROM calls").await, 2);
    assert_eq!(
        count("SELECT COUNT(*) FROM leads WHERE phone_e164 = '+4930999888'").await,
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM tasks WHERE lead_id IS NOT NULL").await,
        1
    );
}

/// An AMI account whose `write` has neither `system` nor `reporting`:
/// Asterisk refuses the resync's `CoreShowChannels`. Ringside logs in once,
/// says what is missing in /healthz, and still logs a live call.
#[tokio::test]
async fn an_account_without_the_resync_class_logs_in_once_and_logs_live_calls() {
    require_asterisk!();
    let mut conf = Conf::shipped();
    let (_, write) = crate::harness::shipped_ami_classes();
    // The shipped classes less the two that let CoreShowChannels run.
    let less: Vec<&str> = write
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "system" | "reporting" | "all"))
        .collect();
    conf.replace(
        "manager.conf",
        &format!("write = {write}"),
        &format!("write = {}", less.join(",")),
    );
    let pbx = Pbx::start("ami_refused_resync", &conf).await;
    let rs = Ringside::start(&pbx, &[]).await;
    let health = wait_for("/healthz to report the refused resync", || async {
        let v = rs
            .app
            .client
            .get(rs.app.url("/healthz"))
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()?;
        (v["ami"]["status"] == "degraded").then_some(v)
    })
    .await;
    let reason = health["ami"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("CoreShowChannels") && reason.contains("`reporting`"),
        "{health}"
    );

    let mut phone = pbx.phone("101", "agent_answer_hangup_3s", 1);
    let mut caller = pbx.call(DIRECT_101, "+4930123456", "Hans Mueller");
    let ring = rs.agent("101").wait_frame("call.ringing", |_| true).await;
    let call_id = ring["call_id"].as_str().unwrap().to_owned();
    assert!(phone.finished().await);
    let _ = caller.finished().await;
    let row = rs.wait_call(&call_id).await;
    assert_eq!(row["disposition"], "answered", "{row}");
    assert_eq!(row["times"], "live", "{row}");

    // Meanwhile the resync was asked again on the same login: one
    // session in Asterisk's log, not one every 400 ms.
    wait_for("three refused resyncs", || async {
        let m = rs
            .app
            .client
            .get(rs.app.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("ringside_ami_refused_total "))?
            .trim()
            .parse()
            .ok()?;
        (n >= 3).then_some(())
    })
    .await;
    let logins = pbx
        .full_log()
        .lines()
        .filter(|l| l.contains(&format!("Manager '{AMI_USER}' logged on")))
        .count();
    assert_eq!(logins, 1, "one login:\n{}", pbx.full_log());
    let sessions = pbx.cli("manager show connected").await;
    assert_eq!(
        sessions
            .lines()
            .filter(|l| l.trim_start().starts_with(AMI_USER))
            .count(),
        1,
        "{sessions}"
    );
}
