//! Typed settings: `ringside.toml` overlaid by `RINGSIDE_*` environment variables.
//!
//! Everything is validated once, at start, so a typo in a URL or a region is
//! reported with the key that holds it instead of surfacing later as a
//! confusing runtime error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings every part of Ringside reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Put before every Redis key and the pub/sub channel (`ringside` →
    /// `ringside:push`), so deployments can share one Redis server.
    pub redis_prefix: String,
    pub ami_url: Option<String>,
    /// The JSON-lines file Asterisk's `cdr_custom` writes
    /// (`dialplans/cdr_custom.conf`), read after an AMI outage.
    pub ami_cdr_file: Option<PathBuf>,
    /// Moments (rings, answers, who is on a call) the queue from the AMI
    /// reader to the screen pops holds; unset: the client's default.
    pub ami_event_queue: Option<usize>,
    pub sip_bind: Option<String>,
    pub http_bind: SocketAddr,
    pub recordings_dir: PathBuf,
    /// ISO 3166 region for numbers written without a country code (`RU`, `DE`, …).
    pub default_region: String,
    pub log_json: bool,
    /// How long a bearer token stays valid.
    pub token_ttl_hours: i64,
    pub phones: PhoneSettings,
    pub routing: RoutingSettings,
    pub pbx: PbxSettings,
    /// Tokens of PBXs that post call events to `/api/v1/cti/events`, by integration name.
    pub cti_tokens: Vec<(String, String)>,
    pub calls: CallSettings,
    pub callbacks: CallbackSettings,
    pub access: AccessSettings,
    pub http: HttpSettings,
}

/// `[http]`: how long the HTTP server waits for slow clients, and how many
/// connections it serves at once.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: std::time::Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: std::time::Duration,
    /// How long a kept-alive connection may sit with no request.
    pub idle_timeout: std::time::Duration,
    /// Open connections (WebSockets included); more wait to be accepted.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// `[http]` in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    header_timeout_s: Option<f64>,
    body_timeout_s: Option<f64>,
    idle_timeout_s: Option<f64>,
    max_connections: Option<i64>,
}

/// Who the HTTP side trusts and how it guards what it sends.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// Reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are
    /// believed; from any other peer those headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Mark the session cookie `Secure` (always; behind a trusted proxy that
    /// says `X-Forwarded-Proto: https` it is marked anyway).
    pub cookie_secure: bool,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

impl AccessSettings {
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 address.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn access_settings(
    env: &[(String, String)],
    proxies: Option<Vec<String>>,
    cookie_secure: Option<bool>,
    metrics_token: Option<String>,
) -> Result<AccessSettings, ConfigError> {
    let key = "RINGSIDE_TRUSTED_PROXIES";
    let raw: Vec<String> = match lookup(env, key) {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => proxies.unwrap_or_default(),
    };
    let mut trusted_proxies = Vec::new();
    for p in raw {
        let net = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                invalid(
                    key,
                    format!("`{p}` is not an address or network like 10.0.0.1 or 10.0.0.0/8"),
                )
            })?;
        trusted_proxies.push(net);
    }
    let cookie_secure = match lookup(env, "RINGSIDE_COOKIE_SECURE") {
        Some(v) => parse_bool(v)
            .ok_or_else(|| invalid("RINGSIDE_COOKIE_SECURE", format!("`{v}` is not true/false")))?,
        None => cookie_secure.unwrap_or(false),
    };
    let metrics_token = lookup(env, "RINGSIDE_METRICS_TOKEN")
        .map(str::to_owned)
        .or(metrics_token)
        .filter(|t| !t.is_empty());
    if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(invalid(
            "RINGSIDE_METRICS_TOKEN",
            "must have at least 16 characters",
        ));
    }
    Ok(AccessSettings {
        trusted_proxies,
        cookie_secure,
        metrics_token,
    })
}

/// `[calls]`: what agents pick from when they wrap a call up, and how long
/// the wrap-up lasts.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Wrap-up codes in the order the console lists them.
    pub dispositions: Vec<WrapUpCode>,
    /// How long an agent stays in wrap-up after their part of a call.
    pub wrap_up: std::time::Duration,
}

/// One wrap-up choice: `code` is stored and filtered on, `label` is shown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUpCode {
    pub code: String,
    pub label: String,
}

impl CallSettings {
    pub fn disposition(&self, code: &str) -> Option<&WrapUpCode> {
        self.dispositions.iter().find(|d| d.code == code)
    }
}

/// The wrap-up codes when `[calls] dispositions` is not set.
pub const DEFAULT_DISPOSITIONS: &[(&str, &str)] = &[
    ("sale", "Sale"),
    ("callback", "Callback requested"),
    ("info", "Information given"),
    ("complaint", "Complaint"),
    ("wrong_number", "Wrong number"),
    ("no_interest", "Not interested"),
];

/// `[callbacks]`: when a missed call's callback task is due.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Minutes of working time between the missed call and the deadline.
    pub sla_minutes: u32,
    /// Working hours; unset: every minute counts.
    pub hours: Option<crate::routing::rules::Schedule>,
}

impl CallbackSettings {
    /// When a callback for a call missed at `missed` is due.
    pub fn due(&self, missed: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let work = chrono::TimeDelta::minutes(i64::from(self.sla_minutes));
        match &self.hours {
            Some(h) => h.after_open_time(missed, work),
            None => missed + work,
        }
    }
}

/// `[calls]` in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsFile {
    dispositions: Option<Vec<WrapUpCode>>,
    wrap_up_seconds: Option<i64>,
}

/// `[callbacks]` in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbacksFile {
    sla_minutes: Option<i64>,
    hours: Option<crate::routing::rules::ScheduleSpec>,
}

/// Call routing: the fallback target and the FastAGI listener.
#[derive(Debug, Clone)]
pub struct RoutingSettings {
    /// Where a call goes when no rule yields a target (`Queue/support`).
    pub default_target: Option<String>,
    /// FastAGI listener; unset: off.
    pub agi_bind: Option<SocketAddr>,
    /// Channel technology a user's extension is dialled with (`PJSIP` → `PJSIP/101`).
    pub channel_tech: String,
    /// The time routing believes it is at start, running on from there
    /// (`RINGSIDE_ROUTING_CLOCK`, RFC 3339; for tests). Unset: the system clock.
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
}

/// `[routing]` in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    default_target: Option<String>,
    agi_bind: Option<String>,
    channel_tech: Option<String>,
}

/// `[pbx]`: how Ringside names an agent's phone to the PBX and where the
/// calls it places start in the dialplan.
#[derive(Debug, Clone)]
pub struct PbxSettings {
    /// An agent's phone, dialled for click-to-call and routing, paused in
    /// queues, spied on (`PJSIP/{ext}`).
    pub device: DevicePattern,
    /// The dialplan context a click-to-call dials the customer's number
    /// from once the agent answers: the one the agents' phones call from.
    pub originate_context: String,
    /// The number a click-to-call presents to the customer when neither the
    /// user nor their team has one (`RINGSIDE_PRESENTED` in the dialplan).
    pub presented_number: Option<String>,
}

impl Default for PbxSettings {
    fn default() -> Self {
        PbxSettings {
            device: DevicePattern::default(),
            originate_context: DEFAULT_ORIGINATE_CONTEXT.to_owned(),
            presented_number: None,
        }
    }
}

/// The context click-to-call dials from when `[pbx] originate_context` is unset.
pub const DEFAULT_ORIGINATE_CONTEXT: &str = "from-internal";

/// `[pbx]` in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PbxFile {
    device: Option<String>,
    originate_context: Option<String>,
    presented_number: Option<String>,
}

/// The one way Ringside turns a user's extension into the device the PBX
/// knows their phone by: a pattern such as `PJSIP/{ext}`, `SIP/150{ext}` or
/// `Local/{ext}@agents`, where `{ext}` stands for the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePattern(String);

impl Default for DevicePattern {
    fn default() -> Self {
        DevicePattern("PJSIP/{ext}".to_owned())
    }
}

impl DevicePattern {
    /// `TECH/{ext}`: the device of a channel technology (`routing.channel_tech`).
    pub fn of_tech(tech: &str) -> Result<Self, String> {
        Self::parse(&format!("{tech}/{{ext}}"))
    }

    /// Checks a pattern: `TECH/…` with `{ext}` in the part after the `/`, and
    /// nothing that would end the device inside a dialplan argument.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let p = raw.trim();
        let shown = p.escape_default();
        let Some((tech, rest)) = p.split_once('/') else {
            return Err(format!(
                "`{shown}` is not a device like PJSIP/{{ext}}: it needs TECH/ before the rest"
            ));
        };
        if tech.is_empty() || !tech.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "`{shown}`: `{}` is not a channel technology such as PJSIP or SIP",
                tech.escape_default()
            ));
        }
        if !rest.contains("{ext}") {
            return Err(format!(
                "`{shown}` must contain {{ext}}, where the user's extension goes (PJSIP/{{ext}})"
            ));
        }
        let bare = rest.replace("{ext}", "");
        if let Some(c) = bare.chars().find(|c| {
            !c.is_ascii_graphic()
                || matches!(
                    c,
                    ',' | '&' | '|' | '(' | ')' | '{' | '}' | '"' | '\\' | '\'' | ';'
                )
        }) {
            return Err(format!(
                "`{shown}` may not contain `{}`: a device is one word of letters, digits and - _ . @ / : + # *",
                c.escape_default()
            ));
        }
        if p.len() > 200 {
            return Err(format!("`{shown}` is longer than 200 characters"));
        }
        Ok(DevicePattern(p.to_owned()))
    }

    /// The device of the phone with extension `ext` (`101` → `PJSIP/101`).
    pub fn device(&self, ext: &str) -> String {
        self.0.replace("{ext}", ext)
    }

    /// The extension a device of this pattern is for, the other way round
    /// (`SIP/1500{ext}` and `SIP/150010002` → `10002`): technology compared
    /// ignoring case, the part after `@` left out for `Local` channels.
    pub fn ext_of(&self, device: &str) -> Option<String> {
        let (ptech, prest) = self.0.split_once('/')?;
        let (tech, rest) = device.split_once('/')?;
        if !ptech.eq_ignore_ascii_case(tech) {
            return None;
        }
        let (prest, rest) = if tech.eq_ignore_ascii_case("Local") {
            (
                prest.split(['@', '/']).next().unwrap_or(prest),
                rest.split(['@', '/', ';']).next().unwrap_or(rest),
            )
        } else {
            (prest, rest)
        };
        let (before, after) = prest.split_once("{ext}")?;
        let ext = rest.strip_prefix(before)?.strip_suffix(after)?;
        (!ext.is_empty()).then(|| ext.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// PBX quirks and the company's own numbers, used by caller-ID matching.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSettings {
    /// Rewrites applied to a raw number before it is parsed, in order.
    #[serde(default)]
    pub rewrite: Vec<RewriteRule>,
    /// The company's own numbers (DIDs, trunks): never matched to customers.
    #[serde(default)]
    pub own_numbers: Vec<String>,
    /// Numbers with at most this many digits are internal extensions (default 5,
    /// allowed 1..=15, the
    /// longest a number can be).
    #[serde(default)]
    pub internal_max_digits: Option<usize>,
}

/// `pattern` is a regular expression over the raw number; `replace` may use `$1`….
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteRule {
    pub pattern: String,
    pub replace: String,
}

/// The file format: every key optional, same names as the env variables without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// `name=token` pairs, comma-separated in the environment.
    cti_tokens: Option<Vec<String>>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    ami_url: Option<String>,
    ami_cdr_file: Option<PathBuf>,
    ami_event_queue: Option<i64>,
    sip_bind: Option<String>,
    http_bind: Option<String>,
    recordings_dir: Option<PathBuf>,
    default_region: Option<String>,
    log_json: Option<bool>,
    token_ttl_hours: Option<i64>,
    trusted_proxies: Option<Vec<String>>,
    cookie_secure: Option<bool>,
    metrics_token: Option<String>,
    #[serde(default)]
    phones: PhoneSettings,
    #[serde(default)]
    routing: RoutingFile,
    #[serde(default)]
    pbx: PbxFile,
    #[serde(default)]
    calls: CallsFile,
    #[serde(default)]
    callbacks: CallbacksFile,
    #[serde(default)]
    http: HttpFile,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Reads `file` (or `./ringside.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Same as [`Config::load`] with an explicit environment (testable).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let default_path = Path::new("ringside.toml");
        let env_path = lookup(env, "RINGSIDE_CONFIG").map(PathBuf::from);
        let path = file
            .map(Path::to_path_buf)
            .or(env_path)
            .or_else(|| default_path.exists().then(|| default_path.to_path_buf()));
        let fc = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path,
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let get = |key: &str, file: Option<String>| lookup(env, key).map(str::to_owned).or(file);

        let database_url = get("RINGSIDE_DATABASE_URL", fc.database_url)
            .unwrap_or_else(|| "sqlite://ringside.db".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "RINGSIDE_DATABASE_URL",
                format!("`{database_url}` is neither sqlite://FILE nor postgres://…"),
            ));
        }
        let redis_url = get("RINGSIDE_REDIS_URL", fc.redis_url).filter(|s| !s.is_empty());
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(invalid(
                "RINGSIDE_REDIS_URL",
                format!("`{url}` must start with redis://"),
            ));
        }
        let redis_prefix =
            get("RINGSIDE_REDIS_PREFIX", fc.redis_prefix).unwrap_or_else(|| "ringside".to_owned());
        if redis_prefix.is_empty()
            || redis_prefix.len() > 64
            || !redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(invalid(
                "RINGSIDE_REDIS_PREFIX",
                format!(
                    "`{redis_prefix}` must be 1 to 64 letters, digits, `_`, `-` or `.` \
                     (e.g. the deployment's name)"
                ),
            ));
        }
        let ami_url = get("RINGSIDE_AMI_URL", fc.ami_url).filter(|s| !s.is_empty());
        if let Some(url) = &ami_url
            && !url.starts_with("ami://")
        {
            return Err(invalid(
                "RINGSIDE_AMI_URL",
                format!("`{url}` must look like ami://user:secret@host:5038"),
            ));
        }
        let ami_cdr_file = lookup(env, "RINGSIDE_AMI_CDR_FILE")
            .map(PathBuf::from)
            .or(fc.ami_cdr_file)
            .filter(|p| !p.as_os_str().is_empty());
        let key = "RINGSIDE_AMI_EVENT_QUEUE";
        let ami_event_queue = match lookup(env, key).filter(|v| !v.is_empty()) {
            Some(raw) => Some(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(key, format!("`{raw}` is not a number")))?,
            ),
            None => fc.ami_event_queue,
        };
        let min = crate::telephony::ami::client::MIN_EVENT_QUEUE as i64;
        if let Some(n) = ami_event_queue
            && !(min..=1_000_000).contains(&n)
        {
            return Err(invalid(key, format!("must be between {min} and 1000000")));
        }
        let ami_event_queue = ami_event_queue.map(|n| n as usize);
        let cti_raw: Vec<String> = match lookup(env, "RINGSIDE_CTI_TOKENS") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => fc.cti_tokens.clone().unwrap_or_default(),
        };
        let mut cti_tokens = Vec::new();
        for pair in cti_raw {
            match pair.split_once('=') {
                Some((name, token)) if !name.trim().is_empty() && token.trim().len() >= 16 => {
                    cti_tokens.push((name.trim().to_owned(), token.trim().to_owned()))
                }
                _ => {
                    return Err(invalid(
                        "RINGSIDE_CTI_TOKENS",
                        "each entry must be name=token with a token of at least 16 characters",
                    ));
                }
            }
        }
        let sip_bind = get("RINGSIDE_SIP_BIND", fc.sip_bind).filter(|s| !s.is_empty());
        let http_bind_raw =
            get("RINGSIDE_HTTP_BIND", fc.http_bind).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let http_bind = http_bind_raw.parse().map_err(|_| {
            invalid(
                "RINGSIDE_HTTP_BIND",
                format!("`{http_bind_raw}` is not an address like 127.0.0.1:8080"),
            )
        })?;
        let recordings_dir = lookup(env, "RINGSIDE_RECORDINGS_DIR")
            .map(PathBuf::from)
            .or(fc.recordings_dir)
            .unwrap_or_else(|| PathBuf::from("recordings"));
        let default_region = get("RINGSIDE_DEFAULT_REGION", fc.default_region)
            .unwrap_or_else(|| "RU".to_owned())
            .to_ascii_uppercase();
        if default_region.parse::<phonenumber::country::Id>().is_err() {
            return Err(invalid(
                "RINGSIDE_DEFAULT_REGION",
                format!("`{default_region}` is not a two-letter region such as RU, UA or DE"),
            ));
        }
        let log_json = match lookup(env, "RINGSIDE_LOG_JSON") {
            Some(v) => parse_bool(v)
                .ok_or_else(|| invalid("RINGSIDE_LOG_JSON", format!("`{v}` is not true/false")))?,
            None => fc.log_json.unwrap_or(false),
        };
        let token_ttl_hours = match lookup(env, "RINGSIDE_TOKEN_TTL_HOURS") {
            Some(v) => v.parse().map_err(|_| {
                invalid("RINGSIDE_TOKEN_TTL_HOURS", format!("`{v}` is not a number"))
            })?,
            None => fc.token_ttl_hours.unwrap_or(12),
        };
        if !(1..=24 * 90).contains(&token_ttl_hours) {
            return Err(invalid(
                "RINGSIDE_TOKEN_TTL_HOURS",
                "must be between 1 and 2160 hours",
            ));
        }
        // The same compilation the caller matcher does at start: bad
        // patterns, own numbers that do not parse in the default region and
        // an out-of-range extension length are reported here, by key.
        if let Err(e) = crate::crm::caller::Matcher::new(&default_region, &fc.phones) {
            use crate::crm::caller::MatcherError;
            let key = match &e {
                MatcherError::Rewrite { .. } => "phones.rewrite",
                MatcherError::OwnNumber { .. } => "phones.own_numbers",
                MatcherError::InternalMaxDigits(_) => "phones.internal_max_digits",
                MatcherError::Region(_) => "RINGSIDE_DEFAULT_REGION",
            };
            return Err(invalid(key, e.to_string()));
        }
        let routing = routing_settings(env, fc.routing)?;
        let pbx = pbx_settings(env, fc.pbx, &routing)?;
        let calls = call_settings(env, fc.calls)?;
        let callbacks = callback_settings(env, fc.callbacks)?;
        let access = access_settings(env, fc.trusted_proxies, fc.cookie_secure, fc.metrics_token)?;
        let http = http_settings(env, fc.http)?;
        Ok(Config {
            database_url,
            redis_url,
            redis_prefix,
            ami_url,
            ami_cdr_file,
            ami_event_queue,
            sip_bind,
            http_bind,
            recordings_dir,
            default_region,
            log_json,
            token_ttl_hours,
            phones: fc.phones,
            routing,
            pbx,
            cti_tokens,
            calls,
            callbacks,
            access,
            http,
        })
    }
}

/// Longest wrap-up code and label, and most codes in the list.
const MAX_CODE: usize = 32;
const MAX_LABEL: usize = 100;
const MAX_DISPOSITIONS: usize = 100;

/// The longest wrap-up: an hour.
const MAX_WRAP_UP_SECONDS: i64 = 3600;

fn call_settings(env: &[(String, String)], file: CallsFile) -> Result<CallSettings, ConfigError> {
    let key = "RINGSIDE_WRAP_UP_SECONDS";
    let wrap_up = match lookup(env, key).filter(|v| !v.is_empty()) {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(key, format!("`{v}` is not a number of seconds")))?,
        None => file
            .wrap_up_seconds
            .unwrap_or(crate::presence::WRAP_UP.as_secs() as i64),
    };
    if !(0..=MAX_WRAP_UP_SECONDS).contains(&wrap_up) {
        return Err(invalid(
            key,
            format!("must be between 0 and {MAX_WRAP_UP_SECONDS} seconds, not {wrap_up}"),
        ));
    }
    let wrap_up = std::time::Duration::from_secs(wrap_up as u64);
    let key = "calls.dispositions";
    let list = match file.dispositions {
        Some(list) => list,
        None => {
            return Ok(CallSettings {
                wrap_up,
                dispositions: DEFAULT_DISPOSITIONS
                    .iter()
                    .map(|(code, label)| WrapUpCode {
                        code: (*code).to_owned(),
                        label: (*label).to_owned(),
                    })
                    .collect(),
            });
        }
    };
    if list.len() > MAX_DISPOSITIONS {
        return Err(invalid(
            key,
            format!("at most {MAX_DISPOSITIONS} codes, not {}", list.len()),
        ));
    }
    let mut out: Vec<WrapUpCode> = Vec::with_capacity(list.len());
    for (i, d) in list.into_iter().enumerate() {
        let n = i + 1;
        let code = d.code.trim();
        if code.is_empty() || code.len() > MAX_CODE {
            return Err(invalid(
                key,
                format!("entry {n}: a code is 1 to {MAX_CODE} characters"),
            ));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(invalid(
                key,
                format!(
                    "entry {n}: code `{}` may hold only letters, digits and _ - .",
                    code.escape_default()
                ),
            ));
        }
        let label = d.label.trim();
        if label.is_empty() || label.chars().count() > MAX_LABEL {
            return Err(invalid(
                key,
                format!("entry {n} (`{code}`): a label is 1 to {MAX_LABEL} characters"),
            ));
        }
        if label.chars().any(char::is_control) {
            return Err(invalid(
                key,
                format!("entry {n} (`{code}`): the label contains control characters"),
            ));
        }
        if out.iter().any(|o| o.code == code) {
            return Err(invalid(
                key,
                format!("entry {n}: code `{code}` is listed twice"),
            ));
        }
        out.push(WrapUpCode {
            code: code.to_owned(),
            label: label.to_owned(),
        });
    }
    Ok(CallSettings {
        dispositions: out,
        wrap_up,
    })
}

/// A week: the longest callback deadline that still reads as a deadline.
const MAX_SLA_MINUTES: i64 = 7 * 24 * 60;

fn callback_settings(
    env: &[(String, String)],
    file: CallbacksFile,
) -> Result<CallbackSettings, ConfigError> {
    let key = "RINGSIDE_CALLBACKS_SLA_MINUTES";
    let sla = match lookup(env, key).filter(|v| !v.is_empty()) {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(key, format!("`{v}` is not a number of minutes")))?,
        None => file.sla_minutes.unwrap_or(15),
    };
    if !(1..=MAX_SLA_MINUTES).contains(&sla) {
        return Err(invalid(
            key,
            format!("must be between 1 and {MAX_SLA_MINUTES} minutes, not {sla}"),
        ));
    }
    let hours = match file.hours {
        Some(spec) => Some(
            spec.parse("callbacks.hours")
                .map_err(|e| invalid("callbacks.hours", e))?,
        ),
        None => None,
    };
    Ok(CallbackSettings {
        sla_minutes: sla as u32,
        hours,
    })
}

fn http_settings(env: &[(String, String)], file: HttpFile) -> Result<HttpSettings, ConfigError> {
    let d = HttpSettings::default();
    let secs = |key: &'static str, file: Option<f64>, default: std::time::Duration| {
        let v = match lookup(env, key) {
            Some(raw) => raw
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid(key, format!("`{raw}` is not a number of seconds")))?,
            None => match file {
                Some(v) => v,
                None => return Ok(default),
            },
        };
        if !(0.05..=86_400.0).contains(&v) {
            return Err(invalid(key, "must be between 0.05 and 86400 seconds"));
        }
        Ok(std::time::Duration::from_secs_f64(v))
    };
    let header_timeout = secs(
        "RINGSIDE_HTTP_HEADER_TIMEOUT_S",
        file.header_timeout_s,
        d.header_timeout,
    )?;
    let body_timeout = secs(
        "RINGSIDE_HTTP_BODY_TIMEOUT_S",
        file.body_timeout_s,
        d.body_timeout,
    )?;
    let idle_timeout = secs(
        "RINGSIDE_HTTP_IDLE_TIMEOUT_S",
        file.idle_timeout_s,
        d.idle_timeout,
    )?;
    let key = "RINGSIDE_HTTP_MAX_CONNECTIONS";
    let max_connections = match lookup(env, key) {
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(key, format!("`{raw}` is not a number")))?,
        None => file.max_connections.unwrap_or(d.max_connections as i64),
    };
    if !(1..=1_000_000).contains(&max_connections) {
        return Err(invalid(key, "must be between 1 and 1000000"));
    }
    Ok(HttpSettings {
        header_timeout,
        body_timeout,
        idle_timeout,
        max_connections: max_connections as usize,
    })
}

fn routing_settings(
    env: &[(String, String)],
    file: RoutingFile,
) -> Result<RoutingSettings, ConfigError> {
    let get = |key: &str, file: Option<String>| {
        lookup(env, key)
            .map(str::to_owned)
            .or(file)
            .filter(|s| !s.is_empty())
    };
    let default_target = get("RINGSIDE_ROUTING_DEFAULT_TARGET", file.default_target);
    if let Some(t) = &default_target {
        crate::routing::rules::check_pbx_target(t)
            .map_err(|e| invalid("RINGSIDE_ROUTING_DEFAULT_TARGET", e))?;
    }
    let agi_bind = match get("RINGSIDE_AGI_BIND", file.agi_bind) {
        Some(raw) => Some(raw.parse().map_err(|_| {
            invalid(
                "RINGSIDE_AGI_BIND",
                format!("`{raw}` is not an address like 0.0.0.0:4573"),
            )
        })?),
        None => None,
    };
    let channel_tech = get("RINGSIDE_ROUTING_CHANNEL_TECH", file.channel_tech)
        .unwrap_or_else(|| "PJSIP".to_owned());
    if !channel_tech
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(
            "RINGSIDE_ROUTING_CHANNEL_TECH",
            format!("`{channel_tech}` is not a channel technology such as PJSIP or SIP"),
        ));
    }
    let clock = match lookup(env, "RINGSIDE_ROUTING_CLOCK").filter(|s| !s.is_empty()) {
        Some(raw) => Some(
            chrono::DateTime::parse_from_rfc3339(raw.trim())
                .map_err(|_| {
                    invalid(
                        "RINGSIDE_ROUTING_CLOCK",
                        format!("`{raw}` is not a time like 2026-12-07T17:30:00Z"),
                    )
                })?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    Ok(RoutingSettings {
        default_target,
        agi_bind,
        channel_tech,
        clock,
    })
}

/// Asterisk keeps context names under 80 bytes.
const MAX_CONTEXT: usize = 79;

fn pbx_settings(
    env: &[(String, String)],
    file: PbxFile,
    routing: &RoutingSettings,
) -> Result<PbxSettings, ConfigError> {
    let get = |key: &str, file: Option<String>| {
        lookup(env, key)
            .map(str::to_owned)
            .or(file)
            .filter(|s| !s.trim().is_empty())
    };
    let key = "RINGSIDE_PBX_DEVICE";
    // Unset: the channel technology's device, as before the pattern existed.
    let device = match get(key, file.device) {
        Some(raw) => DevicePattern::parse(&raw).map_err(|e| invalid(key, e))?,
        None => DevicePattern::of_tech(&routing.channel_tech)
            .map_err(|e| invalid("RINGSIDE_ROUTING_CHANNEL_TECH", e))?,
    };
    let key = "RINGSIDE_PBX_ORIGINATE_CONTEXT";
    let originate_context = get(key, file.originate_context)
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| DEFAULT_ORIGINATE_CONTEXT.to_owned());
    if originate_context.len() > MAX_CONTEXT
        || !originate_context
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
    {
        return Err(invalid(
            key,
            format!(
                "`{}` is not a dialplan context such as from-internal \
                 (1 to {MAX_CONTEXT} letters, digits, `-`, `_`, `.`, `+`)",
                originate_context.escape_default()
            ),
        ));
    }
    let key = "RINGSIDE_PBX_PRESENTED_NUMBER";
    let presented_number = match get(key, file.presented_number) {
        Some(n) => Some(check_presented_number(&n).map_err(|e| invalid(key, e))?),
        None => None,
    };
    Ok(PbxSettings {
        device,
        originate_context,
        presented_number,
    })
}

/// A number to present as caller ID: digits with an optional leading `+`,
/// 2 to 20 long.
pub fn check_presented_number(raw: &str) -> Result<String, String> {
    let n = raw.trim();
    let digits = n.strip_prefix('+').unwrap_or(n);
    if (2..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(n.to_owned())
    } else {
        Err(format!(
            "`{}` is not a number to present such as +4930123456 (2 to 20 digits, optional +)",
            n.chars().take(40).collect::<String>().escape_default()
        ))
    }
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.database_url, "sqlite://ringside.db");
        assert_eq!(c.http_bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.default_region, "RU");
        assert_eq!(c.redis_prefix, "ringside");
    }

    #[test]
    fn the_redis_prefix_comes_from_the_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(&path, "redis_prefix = \"crm-eu.prod\"\n").unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.redis_prefix, "crm-eu.prod");
        let c =
            Config::load_from(Some(&path), &env(&[("RINGSIDE_REDIS_PREFIX", "staging")])).unwrap();
        assert_eq!(c.redis_prefix, "staging");
        std::fs::write(&path, "redis_prefix = \"a b\"\n").unwrap();
        let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
        assert!(
            err.to_string().starts_with("RINGSIDE_REDIS_PREFIX"),
            "{err}"
        );
    }

    #[test]
    fn access_settings_come_from_the_file_and_env() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert!(c.access.trusted_proxies.is_empty() && !c.access.cookie_secure);
        assert!(c.access.metrics_token.is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\ncookie_secure = true\n\
             metrics_token = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(c.access.trusts(ip("10.1.2.3")) && c.access.trusts(ip("::1")));
        assert!(
            c.access.trusts(ip("::ffff:10.1.2.3")),
            "IPv4 written as IPv6"
        );
        assert!(!c.access.trusts(ip("192.168.0.1")));
        assert!(c.access.cookie_secure);
        assert_eq!(c.access.metrics_token.as_deref(), Some("0123456789abcdef"));
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("RINGSIDE_TRUSTED_PROXIES", "192.168.0.1"),
                ("RINGSIDE_COOKIE_SECURE", "false"),
            ]),
        )
        .unwrap();
        assert!(c.access.trusts(ip("192.168.0.1")) && !c.access.trusts(ip("10.1.2.3")));
        assert!(!c.access.cookie_secure);
        for (k, v) in [
            ("RINGSIDE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("RINGSIDE_TRUSTED_PROXIES", "proxy.example"),
            ("RINGSIDE_COOKIE_SECURE", "maybe"),
            ("RINGSIDE_METRICS_TOKEN", "short"),
        ] {
            let err = Config::load_from(None, &env(&[(k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            ("RINGSIDE_DATABASE_URL", "mysql://x"),
            ("RINGSIDE_HTTP_BIND", "localhost"),
            ("RINGSIDE_DEFAULT_REGION", "XX"),
            ("RINGSIDE_AMI_URL", "tcp://h:5038"),
            ("RINGSIDE_REDIS_URL", "h:6379"),
            ("RINGSIDE_REDIS_PREFIX", ""),
            ("RINGSIDE_REDIS_PREFIX", "two words"),
            ("RINGSIDE_REDIS_PREFIX", "a:b"),
            ("RINGSIDE_REDIS_PREFIX", "*"),
            ("RINGSIDE_AGI_BIND", "4573"),
            ("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/support,t"),
        ] {
            let err = Config::load_from(None, &env(&[(k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }

    #[test]
    fn http_limits_come_from_the_file_or_env_and_are_checked() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.http.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.http.max_connections, 1024);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "[http]\nheader_timeout_s = 2.5\nidle_timeout_s = 5\nmax_connections = 50\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&path),
            &env(&[("RINGSIDE_HTTP_BODY_TIMEOUT_S", "0.5")]),
        )
        .unwrap();
        assert_eq!(
            c.http.header_timeout,
            std::time::Duration::from_millis(2500)
        );
        assert_eq!(c.http.idle_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.http.body_timeout, std::time::Duration::from_millis(500));
        assert_eq!(c.http.max_connections, 50);
        for (k, v) in [
            ("RINGSIDE_HTTP_HEADER_TIMEOUT_S", "soon"),
            ("RINGSIDE_HTTP_BODY_TIMEOUT_S", "0"),
            ("RINGSIDE_HTTP_IDLE_TIMEOUT_S", "-1"),
            ("RINGSIDE_HTTP_MAX_CONNECTIONS", "0"),
            ("RINGSIDE_ROUTING_CLOCK", "tomorrow"),
        ] {
            let err = Config::load_from(None, &env(&[(k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{k}={v}: {err}");
        }
    }

    #[test]
    fn phone_settings_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        for (text, key) in [
            (
                "[[phones.rewrite]]\npattern = '('\nreplace = ''\n",
                "phones.rewrite",
            ),
            (
                "[phones]\nown_numbers = ['+7 495 000']\n",
                "phones.own_numbers",
            ),
            (
                "[phones]\ninternal_max_digits = 20\n",
                "phones.internal_max_digits",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
            assert!(err.to_string().starts_with(key), "{text}: {err}");
        }
        std::fs::write(
            &path,
            "[phones]\nown_numbers = ['8 495 100-00-00']\ninternal_max_digits = 4\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.phones.internal_max_digits, Some(4));
    }

    #[test]
    fn routing_settings_come_from_the_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "[routing]\ndefault_target = \"Queue/support\"\nagi_bind = \"127.0.0.1:4573\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.routing.default_target.as_deref(), Some("Queue/support"));
        assert_eq!(c.routing.agi_bind.unwrap().port(), 4573);
        assert_eq!(c.routing.channel_tech, "PJSIP");
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("RINGSIDE_AGI_BIND", "0.0.0.0:0"),
                ("RINGSIDE_ROUTING_DEFAULT_TARGET", "Queue/night"),
                ("RINGSIDE_ROUTING_CHANNEL_TECH", "SIP"),
            ]),
        )
        .unwrap();
        assert_eq!(c.routing.default_target.as_deref(), Some("Queue/night"));
        assert_eq!(c.routing.agi_bind.unwrap().port(), 0);
        assert_eq!(c.routing.channel_tech, "SIP");
        let defaults = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(defaults.routing.agi_bind, None);
        assert_eq!(defaults.routing.default_target, None);
    }

    #[test]
    fn the_agent_device_and_originate_context_come_from_the_file_and_env() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.pbx.device.device("101"), "PJSIP/101");
        assert_eq!(c.pbx.originate_context, "from-internal");
        // The channel technology still decides the device when no pattern is set.
        let c = Config::load_from(None, &env(&[("RINGSIDE_ROUTING_CHANNEL_TECH", "SIP")])).unwrap();
        assert_eq!(c.pbx.device.device("101"), "SIP/101");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "[routing]\nchannel_tech = \"IAX2\"\n[pbx]\ndevice = \"Local/{ext}@agents/n\"\n\
             originate_context = \"from-agents\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.pbx.device.device("102"), "Local/102@agents/n");
        assert_eq!(c.pbx.originate_context, "from-agents");
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("RINGSIDE_PBX_DEVICE", "SIP/150{ext}"),
                ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "office.agents"),
            ]),
        )
        .unwrap();
        assert_eq!(c.pbx.device.device("7"), "SIP/1507");
        assert_eq!(c.pbx.originate_context, "office.agents");
        for (k, v, needle) in [
            ("RINGSIDE_PBX_DEVICE", "PJSIP", "TECH/"),
            ("RINGSIDE_PBX_DEVICE", "PJSIP/101", "{ext}"),
            ("RINGSIDE_PBX_DEVICE", "PJ SIP/{ext}", "channel technology"),
            ("RINGSIDE_PBX_DEVICE", "PJSIP/{ext}&SIP/{ext}", "`&`"),
            ("RINGSIDE_PBX_DEVICE", "PJSIP/{ext},20", "`,`"),
            ("RINGSIDE_PBX_DEVICE", "PJSIP/{ext} x", "` `"),
            ("RINGSIDE_PBX_DEVICE", "PJSIP/{extension}", "{ext}"),
            ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "from agents", "context"),
            ("RINGSIDE_PBX_ORIGINATE_CONTEXT", "a,b", "context"),
        ] {
            let err = Config::load_from(None, &env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(k), "{v}: {err}");
            assert!(err.contains(needle), "{v}: {err}");
        }
        std::fs::write(&path, "[pbx]\ncontext = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("context"),
            "typos are reported: {err}"
        );
    }

    #[test]
    fn wrap_up_lasts_ten_seconds_unless_set() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.calls.wrap_up, std::time::Duration::from_secs(10));
        let c = Config::load_from(None, &env(&[("RINGSIDE_WRAP_UP_SECONDS", "0")])).unwrap();
        assert_eq!(c.calls.wrap_up, std::time::Duration::ZERO);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(&path, "[calls]\nwrap_up_seconds = 45\n").unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.calls.wrap_up, std::time::Duration::from_secs(45));
        for bad in ["-1", "3601", "soon"] {
            let err = Config::load_from(None, &env(&[("RINGSIDE_WRAP_UP_SECONDS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("RINGSIDE_WRAP_UP_SECONDS"), "{bad}: {err}");
        }
    }

    #[test]
    fn dispositions_default_to_six_and_bad_lists_are_refused() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        let codes: Vec<&str> = c
            .calls
            .dispositions
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "sale",
                "callback",
                "info",
                "complaint",
                "wrong_number",
                "no_interest"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "[calls]\ndispositions = [{ code = \"sale\", label = \"Продажа\" }, { code = \"demo-booked\", label = \" Demo booked \" }]\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.calls.dispositions.len(), 2);
        assert_eq!(
            c.calls.disposition("demo-booked").unwrap().label,
            "Demo booked"
        );
        assert!(c.calls.disposition("info").is_none());
        let long = "x".repeat(33);
        for (list, needle) in [
            (
                "{ code = \"sale\", label = \"A\" }, { code = \"sale\", label = \"B\" }",
                "twice",
            ),
            ("{ code = \" \", label = \"A\" }", "1 to 32"),
            (
                &format!("{{ code = \"{long}\", label = \"A\" }}"),
                "1 to 32",
            ),
            ("{ code = \"a b\", label = \"A\" }", "only letters"),
            ("{ code = \"a\", label = \"\" }", "label"),
            ("{ code = \"a\", label = \"A\\u0007\" }", "control"),
        ] {
            std::fs::write(&path, format!("[calls]\ndispositions = [{list}]\n")).unwrap();
            let err = Config::load_from(Some(&path), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("calls.dispositions"), "{list}: {err}");
            assert!(err.contains(needle), "{list}: {err}");
        }
        std::fs::write(&path, "[calls]\ndispositions = [{ code = \"a\" }]\n").unwrap();
        assert!(
            Config::load_from(Some(&path), &env(&[])).is_err(),
            "a label is required"
        );
    }

    #[test]
    fn callback_deadline_settings() {
        use chrono::TimeZone;
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.callbacks.sla_minutes, 15);
        assert!(c.callbacks.hours.is_none());
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 18, 0, 0)
            .unwrap();
        assert_eq!(c.callbacks.due(at), at + chrono::TimeDelta::minutes(15));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "[callbacks]\nsla_minutes = 30\nhours = { timezone = \"Europe/Moscow\", days = [\"mon-fri\"], from = \"09:00\", to = \"18:00\" }\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.callbacks.sla_minutes, 30);
        // Monday 21:00 in Moscow: due Tuesday 09:30 Moscow (06:30 UTC).
        assert_eq!(
            c.callbacks.due(at),
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 24, 6, 30, 0)
                .unwrap()
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[("RINGSIDE_CALLBACKS_SLA_MINUTES", "5")]),
        )
        .unwrap();
        assert_eq!(c.callbacks.sla_minutes, 5);
        for v in ["0", "-3", "ten", "20000"] {
            let err = Config::load_from(None, &env(&[("RINGSIDE_CALLBACKS_SLA_MINUTES", v)]))
                .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("RINGSIDE_CALLBACKS_SLA_MINUTES"),
                "{err}"
            );
        }
        for (text, needle) in [
            (
                "[callbacks]\nhours = { timezone = \"Mars/Base\", days = [\"mon\"], from = \"09:00\", to = \"18:00\" }\n",
                "callbacks.hours.timezone",
            ),
            (
                "[callbacks]\nhours = { timezone = \"UTC\", days = [\"someday\"], from = \"09:00\", to = \"18:00\" }\n",
                "callbacks.hours.days",
            ),
            (
                "[callbacks]\nhours = { timezone = \"UTC\", days = [\"mon\"], from = \"9am\", to = \"18:00\" }\n",
                "callbacks.hours.from",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load_from(Some(&path), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("callbacks.hours"), "{err}");
            assert!(err.contains(needle), "{err}");
        }
        std::fs::write(&path, "[callbacks]\nsla_minutes = 0\n").unwrap();
        assert!(Config::load_from(Some(&path), &env(&[])).is_err());
        std::fs::write(&path, "[callbacks]\nsla = 10\n").unwrap();
        let err = Config::load_from(Some(&path), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sla"), "typos are reported: {err}");
    }

    #[test]
    fn env_overrides_file_and_file_typos_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringside.toml");
        std::fs::write(
            &path,
            "http_bind = \"127.0.0.1:9000\"\ndefault_region = \"de\"\n",
        )
        .unwrap();
        let c =
            Config::load_from(Some(&path), &env(&[("RINGSIDE_HTTP_BIND", "0.0.0.0:1")])).unwrap();
        assert_eq!(c.http_bind.to_string(), "0.0.0.0:1");
        assert_eq!(c.default_region, "DE");
        std::fs::write(&path, "htp_bind = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("htp_bind"), "{err}");
    }
}
