//! Bulk contact import from CSV: streams the file (bounded memory whatever its
//! size), maps columns by header, reports bad rows by line number and keeps the
//! good ones, and merges rows whose normalized phone is already known.
//!
//! Rows are cut from the file line by line here rather than by a CSV
//! reader, so that one stray quote cannot swallow the lines after it: a
//! quoted value may run over several lines only when the row it ends in
//! has as many values as the header; otherwise the quote's line is
//! reported ("unbalanced quote") and reading goes on at the next line.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};

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
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the header row (line {0}) {1}")]
    BadHeader(u64, String),
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
    let delimiter = char::from(opts.delimiter.unwrap_or(b','));
    let mut lines = Lines::new(input);
    let headers = loop {
        let Some((no, raw)) = lines.next()? else {
            return Err(ImportError::NoHeader);
        };
        let text = String::from_utf8(raw)
            .map_err(|_| ImportError::BadHeader(no, "is not UTF-8 text".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
        if text.trim().is_empty() {
            continue;
        }
        match split_fields(&text, delimiter) {
            Some(f) => break f,
            None => {
                return Err(ImportError::BadHeader(no, "has an unbalanced quote".into()));
            }
        }
    };
    let width = headers.len();
    let headers: Vec<String> = headers.into_iter().map(crate::text::clean_owned).collect();
    let headers = csv::StringRecord::from(headers);
    let cols = Columns::resolve(&headers, opts)?;
    let batch = opts.batch.max(1);
    let mut report = ImportReport::default();
    let mut owners: HashMap<String, Option<i64>> = HashMap::new();
    let mut companies: HashMap<String, i64> = HashMap::new();
    let mut tx = db.begin_write().await?;
    let mut in_batch = 0usize;
    let mut bad = |report: &mut ImportReport, line: u64, reason: String| {
        report.bad += 1;
        on_bad(line, &reason);
        if report.bad_samples.len() < 100 {
            report.bad_samples.push((line, reason));
        }
    };
    while let Some((line, raw)) = lines.next()? {
        let Ok(text) = String::from_utf8(raw) else {
            report.rows += 1;
            bad(&mut report, line, "the line is not UTF-8 text".into());
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let fields = match split_fields(&text, delimiter) {
            Some(f) => f,
            None => match lines.continue_quoted(text, delimiter, width)? {
                Some(f) => f,
                None => {
                    bad(
                        &mut report,
                        line,
                        "unbalanced quote: a quoted value starts on this line and is not closed"
                            .into(),
                    );
                    continue;
                }
            },
        };
        if fields.len() != width {
            bad(
                &mut report,
                line,
                format!(
                    "{} values where the header has {width} (a delimiter inside an unquoted value?)",
                    fields.len()
                ),
            );
            continue;
        }
        // NUL and other control characters are dropped here, once, so the
        // row is the same on either database (a quoted value keeps its lines).
        let fields: Vec<String> = fields
            .into_iter()
            .map(crate::text::clean_keeping_lines)
            .collect();
        let record = csv::StringRecord::from(fields);
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

/// Longest run of lines one quoted value may span.
const MAX_QUOTED_LINES: usize = 1000;
/// Longest row a quoted value may make.
const MAX_QUOTED_BYTES: usize = 1 << 20;

/// Physical lines of the input with their numbers (from 1), without line
/// endings; lines read ahead for a quoted value can be given back.
struct Lines<R> {
    input: BufReader<R>,
    read: u64,
    back: VecDeque<(u64, Vec<u8>)>,
}

impl<R: Read> Lines<R> {
    fn new(input: R) -> Self {
        Lines {
            input: BufReader::with_capacity(64 * 1024, input),
            read: 0,
            back: VecDeque::new(),
        }
    }

    fn next(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if let Some(l) = self.back.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        if self.input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        self.read += 1;
        Ok(Some((self.read, buf)))
    }

    /// `first` ends inside a quoted value: joins the next lines until the
    /// value closes. The row counts only if it then has `width` values and
    /// none of the lines it took in is a whole row by itself; otherwise
    /// the lines are given back and `None` means the quote is unbalanced.
    fn continue_quoted(
        &mut self,
        first: String,
        delimiter: char,
        width: usize,
    ) -> std::io::Result<Option<Vec<String>>> {
        let mut joined = first;
        let mut taken: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut found = None;
        while taken.len() < MAX_QUOTED_LINES && joined.len() < MAX_QUOTED_BYTES {
            let Some((no, raw)) = self.next()? else {
                break;
            };
            let Ok(text) = std::str::from_utf8(&raw) else {
                taken.push((no, raw));
                break;
            };
            let looks_like_a_row = split_fields(text, delimiter).is_some_and(|f| f.len() == width);
            joined.push('\n');
            joined.push_str(text);
            taken.push((no, raw));
            if let Some(fields) = split_fields(&joined, delimiter) {
                if fields.len() == width {
                    found = Some(fields);
                }
                break;
            }
            if looks_like_a_row {
                break;
            }
        }
        if found.is_none() {
            for l in taken.into_iter().rev() {
                self.back.push_front(l);
            }
        }
        Ok(found)
    }
}

/// Splits one row into values (RFC 4180: a value that starts with `"` is
/// quoted, `""` inside it is a quote; a quote inside an unquoted value is
/// kept as it is). `None`: the row ends inside a quoted value.
fn split_fields(text: &str, delimiter: char) -> Option<Vec<String>> {
    #[derive(PartialEq)]
    enum At {
        Start,
        Plain,
        Quoted,
        QuoteInQuoted,
    }
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut at = At::Start;
    for c in text.chars() {
        at = match at {
            At::Start if c == '"' => At::Quoted,
            At::Start | At::Plain if c == delimiter => {
                fields.push(std::mem::take(&mut cur));
                At::Start
            }
            At::Start | At::Plain => {
                cur.push(c);
                At::Plain
            }
            At::Quoted if c == '"' => At::QuoteInQuoted,
            At::Quoted => {
                cur.push(c);
                At::Quoted
            }
            At::QuoteInQuoted if c == '"' => {
                cur.push('"');
                At::Quoted
            }
            At::QuoteInQuoted if c == delimiter => {
                fields.push(std::mem::take(&mut cur));
                At::Start
            }
            // `"Firm" 17`: text after the closing quote stays in the value.
            At::QuoteInQuoted => {
                cur.push(c);
                At::Plain
            }
        };
    }
    if at == At::Quoted {
        return None;
    }
    fields.push(cur);
    Some(fields)
}

#[cfg(test)]
mod split_tests {
    use super::split_fields;

    #[test]
    fn values_are_split_as_rfc_4180_says() {
        let f = |s: &str| split_fields(s, ',');
        assert_eq!(f("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(f("\"a,b\",c").unwrap(), ["a,b", "c"]);
        assert_eq!(f("\"say \"\"hi\"\"\",x").unwrap(), ["say \"hi\"", "x"]);
        assert_eq!(f("Ivan \"Vanya\" P,x").unwrap(), ["Ivan \"Vanya\" P", "x"]);
        assert_eq!(f("\"Firm\" 17,x").unwrap(), ["Firm 17", "x"]);
        assert_eq!(f("").unwrap(), [""]);
        assert!(f("a,\"open").is_none());
        assert!(f("a,\"open\"\"").is_none());
    }
}
