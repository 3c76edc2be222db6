//! Demo data: users of every role (passwords generated and printed at each
//! start, never fixed), two teams, companies, a few hundred contacts with
//! Russian, Ukrainian and German numbers, two pipelines with deals, tasks.
//! The agents' extensions (101–103) and some callers match the sample PBX.

use crate::auth::{hash_password, random_password};
use crate::crm::phones::PhoneNormalizer;
use crate::store::Db;
use crate::store::activities::NewActivity;
use crate::store::contacts::{ContactData, Phone};
use crate::store::deals::DealData;
use crate::store::tasks::TaskData;
use crate::store::users::{NewUser, UserChanges};

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

const RU_FIRST: [&str; 10] = [
    "Иван",
    "Ольга",
    "Дмитрий",
    "Екатерина",
    "Алексей",
    "Наталья",
    "Михаил",
    "Анна",
    "Павел",
    "Татьяна",
];
const RU_LAST: [&str; 10] = [
    "Петров",
    "Смирнова",
    "Кузнецов",
    "Попова",
    "Васильев",
    "Соколова",
    "Морозов",
    "Новикова",
    "Фёдоров",
    "Волкова",
];
const UA_FIRST: [&str; 6] = ["Олександр", "Оксана", "Андрій", "Ірина", "Богдан", "Марія"];
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
    let b2b = db
        .create_pipeline(
            "B2B sales",
            &[
                ("New".into(), "open".into()),
                ("Qualified".into(), "open".into()),
                ("Proposal".into(), "open".into()),
                ("Negotiation".into(), "open".into()),
                ("Won".into(), "won".into()),
                ("Lost".into(), "lost".into()),
            ],
        )
        .await?;
    let renewals = db
        .create_pipeline(
            "Renewals",
            &[
                ("Due".into(), "open".into()),
                ("Contacted".into(), "open".into()),
                ("Renewed".into(), "won".into()),
                ("Churned".into(), "lost".into()),
            ],
        )
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
        vec!["8 (916) 123-45-67".to_owned()],
        Some(0usize),
        anna,
    ));
    tx_contacts.push((
        "Lukas Müller".to_owned(),
        vec!["030 123456".to_owned(), "+49 151 23456789".to_owned()],
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
        let (name, number) = match i % 3 {
            0 => (
                format!("{} {}", RU_FIRST[i % 10], RU_LAST[(i / 10) % 10]),
                format!(
                    "8-9{:02}-{:03}-{:02}-{:02}",
                    10 + i % 80,
                    100 + i,
                    i % 100,
                    (i * 7) % 100
                ),
            ),
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
                format!("0151 {:08}", 20_000_000 + i * 131),
            ),
        };
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
                    title: format!("Deal #{}", 1000 + n),
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
            body: "Asked for a quote; prefers calls after 14:00.".into(),
            payload: serde_json::json!({}),
            ..Default::default()
        })
        .await?;
        if n % 4 == 0 {
            db.create_task(
                &TaskData {
                    title: "Call back about the quote".into(),
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
    Ok(true)
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
