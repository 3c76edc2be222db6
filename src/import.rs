//! Bulk contact import from CSV: streams the file (bounded memory whatever its
//! size), maps columns by header, reports bad rows by line number and keeps the
//! good ones, and merges rows whose normalized phone is already known.

use std::collections::HashMap;
use std::io::Read;

use crate::crm::phones::PhoneNormalizer;
use crate::store::contacts::{ContactData, Phone};
use crate::store::{Db, import as sql};

/// The contact fields a CSV column can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Company,
    Phone,
    Email,
    Owner,
    Tags,
    Notes,
}

impl Field {
    pub fn parse(s: &str) -> Option<Field> {
        Some(match s.to_ascii_lowercase().as_str() {
            "name" => Field::Name,
            "company" => Field::Company,
            "phone" => Field::Phone,
            "email" => Field::Email,
            "owner" => Field::Owner,
            "tags" => Field::Tags,
            "notes" => Field::Notes,
            _ => return None,
        })
    }

    /// Header names recognised without an explicit mapping (compared lower-cased).
    fn guess(header: &str) -> Option<Field> {
        let h = header.trim().to_lowercase();
        let h = h.as_str();
        Some(match h {
            "name" | "full name" | "fullname" | "contact" | "contact name" | "фио" | "имя"
            | "контакт" | "піб" | "ім'я" | "kontakt" => Field::Name,
            "company"
            | "organization"
            | "organisation"
            | "account"
            | "компания"
            | "организация"
            | "компанія"
            | "firma"
            | "unternehmen" => Field::Company,
            "email" | "e-mail" | "mail" | "почта" | "эл. почта" | "пошта" => {
                Field::Email
            }
            "owner"
            | "responsible"
            | "manager"
            | "ответственный"
            | "менеджер"
            | "відповідальний"
            | "verantwortlich" => Field::Owner,
            "tags" | "tag" | "теги" | "метки" | "теги/мітки" | "мітки" => {
                Field::Tags
            }
            "notes"
            | "note"
            | "comment"
            | "комментарий"
            | "примечание"
            | "коментар"
            | "notizen" => Field::Notes,
            _ if h.starts_with("phone")
                || h.starts_with("tel")
                || h.starts_with("mobile")
                || h.starts_with("телефон")
                || h.starts_with("моб")
                || h.starts_with("handy")
                || h.starts_with("rufnummer") =>
            {
                Field::Phone
            }
            _ => return None,
        })
    }
}

#[derive(Debug, Default)]
pub struct ImportOptions {
    /// Explicit `field → header` mappings; other fields are guessed from headers.
    pub map: Vec<(Field, String)>,
    /// CSV delimiter (default `,`; `;` is common in RU/DE spreadsheets).
    pub delimiter: Option<u8>,
    /// Rows per transaction.
    pub batch: usize,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub rows: u64,
    pub created: u64,
    pub merged: u64,
    pub bad: u64,
    /// The first bad rows: (line, reason). All of them go to `on_bad` as they happen.
    pub bad_samples: Vec<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV has no header row")]
    NoHeader,
    #[error("no column for the contact's name: map one with --map name=HEADER (headers: {0})")]
    NoNameColumn(String),
    #[error("--map {0}: no column with header `{1}`")]
    UnknownHeader(&'static str, String),
    #[error("reading the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

struct Columns {
    by_field: HashMap<Field, Vec<usize>>,
}

impl Columns {
    fn resolve(headers: &csv::StringRecord, opts: &ImportOptions) -> Result<Columns, ImportError> {
        if headers.is_empty() {
            return Err(ImportError::NoHeader);
        }
        let mut by_field: HashMap<Field, Vec<usize>> = HashMap::new();
        let explicit: Vec<Field> = opts.map.iter().map(|(f, _)| *f).collect();
        for (field, header) in &opts.map {
            let idx = headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(header.trim()))
                .ok_or_else(|| ImportError::UnknownHeader(field_name(*field), header.clone()))?;
            by_field.entry(*field).or_default().push(idx);
        }
        for (i, h) in headers.iter().enumerate() {
            if let Some(f) = Field::guess(h.trim_start_matches('\u{feff}'))
                && !explicit.contains(&f)
            {
                by_field.entry(f).or_default().push(i);
            }
        }
        if !by_field.contains_key(&Field::Name) {
            return Err(ImportError::NoNameColumn(
                headers.iter().collect::<Vec<_>>().join(", "),
            ));
        }
        Ok(Columns { by_field })
    }

    fn get<'r>(
        &self,
        rec: &'r csv::StringRecord,
        f: Field,
    ) -> impl Iterator<Item = &'r str> + use<'r> {
        let idx = self.by_field.get(&f).cloned().unwrap_or_default();
        idx.into_iter()
            .filter_map(move |i| rec.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

fn field_name(f: Field) -> &'static str {
    match f {
        Field::Name => "name",
        Field::Company => "company",
        Field::Phone => "phone",
        Field::Email => "email",
        Field::Owner => "owner",
        Field::Tags => "tags",
        Field::Notes => "notes",
    }
}

/// One CSV row turned into contact data, or the reason it cannot be.
struct Row {
    data: ContactData,
    company: Option<String>,
    owner_login: Option<String>,
}

fn parse_row(
    rec: &csv::StringRecord,
    cols: &Columns,
    phones: &PhoneNormalizer,
) -> Result<Row, String> {
    let name = cols.get(rec, Field::Name).collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > 200 {
        return Err("the name is longer than 200 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains control characters".into());
    }
    let mut list: Vec<Phone> = Vec::new();
    for cell in cols.get(rec, Field::Phone) {
        for raw in cell
            .split([';', ',', '|'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let e164 = phones.normalize(raw).map_err(|e| {
                format!("phone `{}`: {e}", raw.chars().take(40).collect::<String>())
            })?;
            if list.iter().all(|p| p.e164 != e164.as_str()) {
                list.push(Phone {
                    raw: raw.to_owned(),
                    e164: e164.as_str().to_owned(),
                    kind: "mobile".into(),
                });
            }
        }
    }
    let email = cols.get(rec, Field::Email).next().map(str::to_owned);
    if let Some(e) = &email
        && (!e.contains('@') || e.len() > 254 || e.contains(char::is_whitespace))
    {
        return Err(format!(
            "email `{}` is not an e-mail address",
            e.chars().take(60).collect::<String>()
        ));
    }
    let mut tags: Vec<String> = Vec::new();
    for cell in cols.get(rec, Field::Tags) {
        for t in cell.split([';', ',', '|']).map(|t| t.trim().to_lowercase()) {
            if !t.is_empty() && t.chars().count() <= 50 && !tags.contains(&t) {
                tags.push(t);
            }
        }
    }
    let company = cols.get(rec, Field::Company).next().map(str::to_owned);
    if company.as_ref().is_some_and(|c| c.chars().count() > 200) {
        return Err("the company name is longer than 200 characters".into());
    }
    Ok(Row {
        data: ContactData {
            name,
            company_id: None,
            owner_id: None,
            email,
            notes: cols.get(rec, Field::Notes).collect::<Vec<_>>().join("\n"),
            tags,
            phones: list,
        },
        company,
        owner_login: cols.get(rec, Field::Owner).next().map(str::to_owned),
    })
}

/// Imports every row of `input`; `on_bad(line, reason)` hears of each rejected row.
pub async fn import_contacts<R: Read>(
    db: &Db,
    phones: &PhoneNormalizer,
    input: R,
    opts: &ImportOptions,
    mut on_bad: impl FnMut(u64, &str),
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter.unwrap_or(b','))
        .flexible(true)
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let cols = Columns::resolve(&headers, opts)?;
    let batch = opts.batch.max(1);
    let mut report = ImportReport::default();
    let mut owners: HashMap<String, Option<i64>> = HashMap::new();
    let mut companies: HashMap<String, i64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    let mut tx = db.begin_write().await?;
    let mut in_batch = 0usize;
    let mut bad = |report: &mut ImportReport, line: u64, reason: String| {
        report.bad += 1;
        on_bad(line, &reason);
        if report.bad_samples.len() < 100 {
            report.bad_samples.push((line, reason));
        }
    };
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                report.rows += 1;
                let at = e.position().map(|p| p.line()).unwrap_or(line);
                bad(&mut report, at, format!("unreadable CSV: {e}"));
                if e.is_io_error() {
                    break;
                }
                continue;
            }
        }
        report.rows += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        let mut row = match parse_row(&record, &cols, phones) {
            Ok(r) => r,
            Err(reason) => {
                bad(&mut report, line, reason);
                continue;
            }
        };
        if let Some(login) = &row.owner_login {
            if !owners.contains_key(login) {
                let id = db.user_id_by_login(login).await?;
                owners.insert(login.clone(), id);
            }
            match owners.get(login).copied().flatten() {
                Some(id) => row.data.owner_id = Some(id),
                None => {
                    bad(
                        &mut report,
                        line,
                        format!("owner `{login}` is not a user login"),
                    );
                    continue;
                }
            }
        }
        if let Some(name) = &row.company {
            let key = name.to_lowercase();
            let id = match companies.get(&key) {
                Some(id) => *id,
                None => {
                    let id = sql::company_by_name(&mut tx, name).await?;
                    if companies.len() > 100_000 {
                        companies.clear();
                    }
                    companies.insert(key, id);
                    id
                }
            };
            row.data.company_id = Some(id);
        }
        let mut existing = None;
        for p in &row.data.phones {
            if let Some(id) = sql::contact_by_phone(&mut tx, &p.e164).await? {
                existing = Some(id);
                break;
            }
        }
        match existing {
            Some(id) => {
                sql::merge_into(&mut tx, id, &row.data).await?;
                report.merged += 1;
            }
            None => {
                sql::insert_contact(&mut tx, &row.data, row.company.as_deref()).await?;
                report.created += 1;
            }
        }
        in_batch += 1;
        if in_batch >= batch {
            tx.commit().await?;
            tx = db.begin_write().await?;
            in_batch = 0;
        }
    }
    tx.commit().await?;
    Ok(report)
}
