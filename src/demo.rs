//! Demo data: users of every role (passwords generated and printed at each
//! start, never fixed), two teams, companies, a few hundred contacts with
//! Russian, Ukrainian and German numbers (written in international form, so
//! every one is kept whatever the default region), two pipelines with deals,
//! tasks, and a routing rule of every kind. The agents' extensions (101–103),
//! the dialled numbers and some callers match the sample PBX.
//!
//! The data everybody shares (pipelines and their stages, deal titles,
//! notes, task titles) is written in one language, the one of the default
//! region (`RU` → Russian, `UA` → Ukrainian, `DE` → German, else English),
//! like the data of a real team would be. Names agree in gender: a Russian
//! surname takes its feminine form with a woman's first name.

use crate::auth::{hash_password, random_password};
use crate::crm::phones::PhoneNormalizer;
use crate::store::Db;
use crate::store::activities::NewActivity;
use crate::store::contacts::{ContactData, Phone};
use crate::store::deals::DealData;
use crate::store::tasks::TaskData;
use crate::store::users::{NewUser, UserChanges};
use crate::telephony::ami::fake::{FakeScript, Pace};
use crate::telephony::ami::synth;

pub struct DemoUser {
    pub login: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub team: Option<&'static str>,
    pub extension: Option<&'static str>,
    pub locale: &'static str,
}

pub const USERS: [DemoUser; 6] = [
    DemoUser {
        login: "admin",
        name: "Alex Admin",
        role: "admin",
        team: None,
        extension: None,
        locale: "en",
    },
    DemoUser {
        login: "maria",
        name: "Мария Петрова",
        role: "manager",
        team: Some("Sales"),
        extension: Some("110"),
        locale: "ru",
    },
    DemoUser {
        login: "sergey",
        name: "Сергей Волков",
        role: "supervisor",
        team: Some("Sales"),
        extension: Some("120"),
        locale: "ru",
    },
    DemoUser {
        login: "anna",
        name: "Anna Ivanova",
        role: "agent",
        team: Some("Sales"),
        extension: Some("101"),
        locale: "en",
    },
    DemoUser {
        login: "boris",
        name: "Boris Smirnov",
        role: "agent",
        team: Some("Sales"),
        extension: Some("102"),
        locale: "ru",
    },
    DemoUser {
        login: "clara",
        name: "Clara Schmidt",
        role: "agent",
        team: Some("Support"),
        extension: Some("103"),
        locale: "de",
    },
];

/// Russian first names, and whether each is a woman's.
const RU_FIRST: [(&str, bool); 10] = [
    ("Иван", false),
    ("Ольга", true),
    ("Дмитрий", false),
    ("Екатерина", true),
    ("Алексей", false),
    ("Наталья", true),
    ("Михаил", false),
    ("Анна", true),
    ("Павел", false),
    ("Татьяна", true),
];
/// Russian surnames in the masculine form; a woman's adds "а" (Петров → Петрова).
const RU_LAST: [&str; 10] = [
    "Петров",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Соколов",
    "Морозов",
    "Новиков",
    "Фёдоров",
    "Волков",
];
const UA_FIRST: [&str; 6] = ["Олександр", "Оксана", "Андрій", "Ірина", "Богдан", "Марія"];
/// Ukrainian surnames the same for men and women.
const UA_LAST: [&str; 6] = [
    "Шевченко",
    "Коваленко",
    "Бондаренко",
    "Ткаченко",
    "Кравченко",
    "Мельник",
];
const DE_FIRST: [&str; 6] = ["Lukas", "Sophie", "Jonas", "Lena", "Felix", "Mia"];
const DE_LAST: [&str; 6] = [
    "Müller",
    "Schneider",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
];
const COMPANIES: [&str; 12] = [
    "ООО «Ромашка»",
    "АО «СтройИнвест»",
    "ТОВ «Київ-Трейд»",
    "Müller Logistik GmbH",
    "Северный Ветер",
    "Berliner Bau AG",
    "ИП Кузнецов",
    "ТОВ «Дніпро Агро»",
    "Volga Tech",
    "Hamburg Shipping KG",
    "МегаСофт",
    "Одеса Порт Сервіс",
];

/// The demo's shared data in one language.
struct Words {
    b2b: &'static str,
    b2b_stages: [&'static str; 6],
    renewals: &'static str,
    renewal_stages: [&'static str; 4],
    /// A deal's title before its number.
    deal: &'static str,
    note: &'static str,
    task: &'static str,
}

fn words(region: &str) -> Words {
    match region {
        "RU" => Words {
            b2b: "Продажи B2B",
            b2b_stages: [
                "Новая",
                "Квалификация",
                "Предложение",
                "Переговоры",
                "Выиграна",
                "Проиграна",
            ],
            renewals: "Продления",
            renewal_stages: ["К продлению", "Связались", "Продлён", "Ушёл"],
            deal: "Сделка №",
            note: "Просил коммерческое предложение; удобнее звонить после 14:00.",
            task: "Перезвонить по предложению",
        },
        "UA" => Words {
            b2b: "Продажі B2B",
            b2b_stages: [
                "Нова",
                "Кваліфікація",
                "Пропозиція",
                "Переговори",
                "Виграна",
                "Програна",
            ],
            renewals: "Продовження",
            renewal_stages: ["До продовження", "Зв'язалися", "Продовжено", "Пішов"],
            deal: "Угода №",
            note: "Просив комерційну пропозицію; зручніше дзвонити після 14:00.",
            task: "Передзвонити щодо пропозиції",
        },
        "DE" => Words {
            b2b: "B2B-Vertrieb",
            b2b_stages: [
                "Neu",
                "Qualifiziert",
                "Angebot",
                "Verhandlung",
                "Gewonnen",
                "Verloren",
            ],
            renewals: "Verlängerungen",
            renewal_stages: ["Fällig", "Kontaktiert", "Verlängert", "Gekündigt"],
            deal: "Auftrag Nr. ",
            note: "Möchte ein Angebot; am besten nach 14:00 anrufen.",
            task: "Wegen des Angebots zurückrufen",
        },
        _ => Words {
            b2b: "B2B sales",
            b2b_stages: ["New", "Qualified", "Proposal", "Negotiation", "Won", "Lost"],
            renewals: "Renewals",
            renewal_stages: ["Due", "Contacted", "Renewed", "Churned"],
            deal: "Deal #",
            note: "Asked for a quote; prefers calls after 14:00.",
            task: "Call back about the quote",
        },
    }
}

/// The name and number of the `i`-th generated contact: Russian, Ukrainian
/// and German in turn.
fn generated_contact(i: usize) -> (String, String) {
    match i % 3 {
        0 => {
            let (first, woman) = RU_FIRST[i % 10];
            let last = RU_LAST[(i / 10) % 10];
            (
                format!("{first} {last}{}", if woman { "а" } else { "" }),
                format!(
                    "+7 9{:02} {:03}-{:02}-{:02}",
                    10 + i % 80,
                    100 + i,
                    i % 100,
                    (i * 7) % 100
                ),
            )
        }
        1 => (
            format!("{} {}", UA_FIRST[i % 6], UA_LAST[(i / 6) % 6]),
            format!(
                "+380 {} {:03} {:02} {:02}",
                [50, 67, 63, 93, 97][i % 5],
                100 + i,
                i % 100,
                (i * 3) % 100
            ),
        ),
        _ => (
            format!("{} {}", DE_FIRST[i % 6], DE_LAST[(i / 6) % 6]),
            format!("+49 151 {:08}", 20_000_000 + i * 131),
        ),
    }
}

/// Seeds the demo data when the database has no users yet.
/// Returns false when it was already seeded.
pub async fn seed(db: &Db, phones: &PhoneNormalizer) -> anyhow::Result<bool> {
    if !db.users().await?.is_empty() {
        return Ok(false);
    }
    let sales = db.create_team("Sales").await?;
    let support = db.create_team("Support").await?;
    let placeholder = hash_password(&random_password());
    let mut ids = Vec::new();
    for u in &USERS {
        let team_id = match u.team {
            Some("Sales") => Some(sales.id),
            Some(_) => Some(support.id),
            None => None,
        };
        let exts: Vec<String> = u.extension.iter().map(|e| e.to_string()).collect();
        let user = db
            .create_user(NewUser {
                login: u.login,
                name: u.name,
                role: u.role,
                team_id,
                locale: u.locale,
                password_hash: &placeholder,
                extensions: &exts,
            })
            .await?;
        ids.push(user.id);
    }
    let (maria, anna, boris, clara) = (ids[1], ids[3], ids[4], ids[5]);
    let w = words(phones.region());
    let outcomes = |names: &[&str]| -> Vec<(String, String)> {
        let n = names.len();
        names
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let outcome = match n - i {
                    2 => "won",
                    1 => "lost",
                    _ => "open",
                };
                ((*s).to_owned(), outcome.to_owned())
            })
            .collect()
    };
    let b2b = db.create_pipeline(w.b2b, &outcomes(&w.b2b_stages)).await?;
    let renewals = db
        .create_pipeline(w.renewals, &outcomes(&w.renewal_stages))
        .await?;
    let mut company_ids = Vec::new();
    for (i, name) in COMPANIES.iter().enumerate() {
        let office = match i % 3 {
            0 => format!("+7 495 {:03}-{:02}-{:02}", 200 + i, 10 + i, 20 + i),
            1 => format!("+49 30 {:07}", 5_500_000 + i * 37),
            _ => format!("+380 44 {:03} {:04}", 300 + i, 1000 + i),
        };
        let e164 = phones
            .normalize(&office)
            .ok()
            .map(|e| e.as_str().to_owned());
        let c = db
            .create_company(&crate::store::companies::CompanyData {
                name: (*name).to_owned(),
                phone_raw: Some(office),
                phone_e164: e164,
                website: None,
            })
            .await?;
        company_ids.push(c.id);
    }
    let owners = [anna, boris, clara, maria];
    let tags = ["vip", "wholesale", "retail", "partner", "new"];
    let mut tx_contacts = Vec::new();
    // The sample PBX's callers first, so its calls pop known cards.
    tx_contacts.push((
        "Иван Петров".to_owned(),
        vec!["+7 (916) 123-45-67".to_owned()],
        Some(0usize),
        anna,
    ));
    tx_contacts.push((
        "Lukas Müller".to_owned(),
        vec!["+49 30 123456".to_owned(), "+49 151 23456789".to_owned()],
        Some(3),
        clara,
    ));
    tx_contacts.push((
        "Ольга Смирнова".to_owned(),
        vec!["+7 903 111-22-33".to_owned()],
        Some(4),
        boris,
    ));
    for i in 0..300usize {
        let (name, number) = generated_contact(i);
        let company = (i % 4 != 0).then_some(i % COMPANIES.len());
        tx_contacts.push((name, vec![number], company, owners[i % owners.len()]));
    }
    let mut first_contacts = Vec::new();
    for (i, (name, numbers, company, owner)) in tx_contacts.into_iter().enumerate() {
        let mut list = Vec::new();
        for raw in numbers {
            if let Ok(e) = phones.normalize(&raw) {
                list.push(Phone {
                    raw,
                    e164: e.as_str().to_owned(),
                    kind: "mobile".into(),
                });
            }
        }
        let c = db
            .create_contact(&ContactData {
                name,
                company_id: company.map(|c| company_ids[c]),
                owner_id: Some(owner),
                email: (i % 2 == 0).then(|| format!("client{i}@example.com")),
                notes: String::new(),
                tags: vec![tags[i % tags.len()].to_owned()],
                phones: list,
            })
            .await?;
        if i < 40 {
            first_contacts.push((c.id, owner));
        }
    }
    for (n, (contact_id, owner)) in first_contacts.iter().enumerate() {
        let pipeline = if n % 3 == 0 { &renewals } else { &b2b };
        let deal = db
            .create_deal(
                pipeline.id,
                &DealData {
                    title: format!("{}{}", w.deal, 1000 + n),
                    contact_id: Some(*contact_id),
                    owner_id: Some(*owner),
                    amount_minor: 1_000_000 * (1 + n as i64 % 9),
                    currency: ["RUB", "EUR", "UAH"][n % 3].into(),
                },
            )
            .await?;
        if n % 2 == 0 && pipeline.stages.len() > 1 {
            db.move_deal(deal.id, pipeline.stages[1].id).await?;
        }
        db.add_activity(&NewActivity {
            kind: "note".into(),
            contact_id: Some(*contact_id),
            author_id: Some(*owner),
            body: w.note.into(),
            payload: serde_json::json!({}),
            ..Default::default()
        })
        .await?;
        if n % 4 == 0 {
            db.create_task(
                &TaskData {
                    title: w.task.into(),
                    due_at: Some(crate::store::now_ms() + (n as i64 - 8) * 3_600_000),
                    assignee_id: Some(*owner),
                    contact_id: Some(*contact_id),
                    lead_id: None,
                },
                Some(maria),
            )
            .await?;
        }
    }
    seed_rules(db, maria, clara, sales.id, support.id).await?;
    Ok(true)
}

/// One routing rule of every kind, in the order they are tried. New callers'
/// leads follow the same rules (a rule whose target is a PBX queue is passed
/// over for a lead); when none names anyone, the managers take them in turn.
async fn seed_rules(
    db: &Db,
    maria: i64,
    clara: i64,
    sales: i64,
    support: i64,
) -> anyhow::Result<()> {
    use crate::routing::rules::{RuleInput, ScheduleSpec, TargetSpec, build_rule};
    let rule = |priority: i64, name: &str, kind: &str| RuleInput {
        priority: Some(priority),
        name: Some(name.to_owned()),
        kind: Some(kind.to_owned()),
        ..Default::default()
    };
    let rules = [
        rule(10, "Known callers to their owner", "sticky"),
        RuleInput {
            did: Some("+7 495 765-43-21".into()),
            target: Some(TargetSpec::UserId(maria)),
            ..rule(20, "Main line to Maria", "did")
        },
        RuleInput {
            did: Some("+7 495 123-45-67".into()),
            target: Some(TargetSpec::Pbx("Queue/sales".into())),
            ..rule(30, "Sales line to the sales queue", "did")
        },
        RuleInput {
            prefix: Some("+49".into()),
            target: Some(TargetSpec::UserId(clara)),
            ..rule(40, "German callers to Clara", "prefix")
        },
        RuleInput {
            schedule: Some(ScheduleSpec {
                timezone: "Europe/Moscow".into(),
                days: vec!["mon-fri".into()],
                from: "09:00".into(),
                to: "18:00".into(),
            }),
            outside_target: Some(TargetSpec::Pbx("Queue/support".into())),
            ..rule(50, "After hours to the support queue", "hours")
        },
        RuleInput {
            target: Some(TargetSpec::TeamId(sales)),
            ..rule(60, "Sales in turn", "round_robin")
        },
        RuleInput {
            target: Some(TargetSpec::TeamId(support)),
            ..rule(70, "Support, least busy first", "least_loaded")
        },
    ];
    for input in rules {
        let data = build_rule(input, None).map_err(|e| anyhow::anyhow!("demo rule: {e}"))?;
        db.create_routing_rule(&data).await?;
    }
    Ok(())
}

/// Where an `ami://user:secret@host:port` URL points, without the login.
pub fn pbx_address(ami_url: &str) -> String {
    match url::Url::parse(ami_url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port()
                .map_or_else(|| "5038".to_owned(), |p| p.to_string())
        ),
        Err(_) => "the configured AMI address".to_owned(),
    }
}

/// Gives every demo user a fresh random password and returns (login, role, password).
pub async fn reset_passwords(db: &Db) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut jobs = Vec::new();
    for u in &USERS {
        jobs.push(tokio::task::spawn_blocking(move || {
            let p = random_password();
            let h = hash_password(&p);
            (u, p, h)
        }));
    }
    let mut out = Vec::new();
    for j in jobs {
        let (u, password, hash) = j.await?;
        if let Some(id) = db.user_id_by_login(u.login).await? {
            db.update_user(
                id,
                UserChanges {
                    password_hash: Some(hash),
                    ..Default::default()
                },
            )
            .await?;
            out.push((u.login.to_owned(), u.role.to_owned(), password));
        }
    }
    Ok(out)
}

/// `text` with every `from` that stands alone (no digit on either side)
/// made `to`; both three digits, so byte offsets (the `.times`) stay right.
fn rewrite_extension(text: &[u8], from: &[u8; 3], to: &[u8; 3]) -> Vec<u8> {
    let mut out = text.to_vec();
    let mut i = 0;
    while i + 3 <= out.len() {
        let alone = (i == 0 || !out[i - 1].is_ascii_digit())
            && out.get(i + 3).is_none_or(|b| !b.is_ascii_digit());
        if &out[i..i + 3] == from && alone {
            out[i..i + 3].copy_from_slice(to);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// The simulated phone system of `ringside demo`: the captured calls again
/// and again, a new one every `every`, at the recorded pace. The captures
/// ring 101 (direct calls) or 101 and 102 (the `sales` queue); the direct
/// ones are replayed to each of the three agents in turn, so anna (101),
/// boris (102) and clara (103) all get calls, answered and busy ones.
pub fn pbx_script(copies: usize, every: std::time::Duration) -> FakeScript {
    let t = pbx_transcript(copies, every);
    let mut script = FakeScript::from_transcript(&t.ami, &t.times);
    script.pace = Pace::Recorded { speed: 1.0 };
    script
}

/// The transcript [`pbx_script`] plays.
fn pbx_transcript(copies: usize, every: std::time::Duration) -> synth::Transcript {
    macro_rules! fx {
        ($n:literal) => {
            (
                &include_bytes!(concat!("../tests/fixtures/ami/", $n, ".ami"))[..],
                include_str!(concat!("../tests/fixtures/ami/", $n, ".times")),
            )
        };
    }
    let to = |(ami, times): (&[u8], &'static str), ext: &[u8; 3]| {
        (rewrite_extension(ami, b"101", ext), times)
    };
    let sources: Vec<(Vec<u8>, &str)> = vec![
        to(fx!("direct_answered"), b"101"),
        to(fx!("queue_answered"), b"101"),
        to(fx!("direct_answered"), b"103"),
        to(fx!("direct_busy"), b"102"),
        to(fx!("queue_abandoned"), b"101"),
        to(fx!("direct_answered"), b"102"),
        to(fx!("direct_busy"), b"103"),
        to(fx!("click_to_call"), b"103"),
    ];
    let sources: Vec<(&[u8], &str)> = sources.iter().map(|(a, t)| (&a[..], *t)).collect();
    let stagger = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
    synth::interleave(&sources, copies, stagger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_names_agree_in_gender() {
        let women: Vec<&str> = RU_FIRST.iter().filter(|f| f.1).map(|f| f.0).collect();
        let mut seen = 0;
        for i in (0..300).filter(|i| i % 3 == 0) {
            let (name, _) = generated_contact(i);
            let (first, last) = name.split_once(' ').unwrap();
            let woman = women.contains(&first);
            assert_eq!(last.ends_with('а'), woman, "{name}");
            seen += 1;
        }
        assert_eq!(seen, 100);
    }

    /// Seeded under each region a team may run with, every contact keeps
    /// its number and every kind of routing rule is there.
    #[tokio::test]
    async fn every_demo_contact_has_a_phone_under_any_default_region() {
        for region in ["RU", "DE", "UA", "US"] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("demo.db").display());
            let db = Db::connect(&url).await.unwrap();
            db.migrate().await.unwrap();
            let phones = PhoneNormalizer::new(region).unwrap();
            assert!(seed(&db, &phones).await.unwrap());
            let (contacts, without): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN NOT EXISTS \
                 (SELECT 1 FROM contact_phones p WHERE p.contact_id = c.id) THEN 1 ELSE 0 END), 0) \
                 FROM contacts c",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(contacts, 303, "{region}");
            assert_eq!(without, 0, "{region}: contacts without a phone");
            let kinds: Vec<String> = db
                .routing_rules()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.kind)
                .collect();
            for kind in crate::routing::rules::KINDS {
                assert!(kinds.iter().any(|k| k == kind), "{region}: no {kind} rule");
            }
        }
    }

    #[test]
    fn the_banner_names_the_pbx_without_its_secret() {
        assert_eq!(
            pbx_address("ami://ringside:s3cret@pbx.example:5038"),
            "pbx.example:5038"
        );
        assert_eq!(pbx_address("ami://u:p@10.0.0.5"), "10.0.0.5:5038");
    }

    #[test]
    fn the_simulated_pbx_rings_every_agent() {
        let t = pbx_transcript(1, std::time::Duration::from_secs(20));
        let records = crate::telephony::ami::replay::replay(&t.ami, Some(&t.times), "RU");
        assert_eq!(records.len(), 8, "every call of a round is a call");
        for ext in ["101", "102", "103"] {
            assert!(
                records.iter().any(|r| r.rang.iter().any(|x| x == ext)),
                "{ext} rings: {:?}",
                records.iter().map(|r| &r.rang).collect::<Vec<_>>()
            );
        }
        assert!(
            records
                .iter()
                .any(|r| r.agent.as_deref() == Some("103") && r.answered_at.is_some()),
            "clara answers a call"
        );
    }
}
