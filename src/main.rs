//! The `ringside` command line: serve, demo, migrate, backup, user, import.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringside::config::Config;
use ringside::crm::phones::PhoneNormalizer;
use ringside::store::users::{NewUser, ROLES, UserChanges};
use ringside::{auth, demo, import, startup, telemetry};

#[derive(Parser)]
#[command(
    name = "ringside",
    version,
    about = "Contact-center CRM: the caller's card on the agent's screen while the phone rings"
)]
struct Cli {
    /// Settings file (default: ./ringside.toml when present). RINGSIDE_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve,
    /// Run the service with demo data (own SQLite file unless RINGSIDE_DATABASE_URL is set).
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE while it is in use.
    Backup { file: PathBuf },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Bulk imports.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Replay a raw AMI transcript and print one JSON line per finished call.
    AmiReplay { file: PathBuf },
    /// Print whose card a phone number opens (JSON, as GET /api/v1/lookup).
    Lookup {
        /// The number in any format: 89161234567, +49 30 123456, sip:101@pbx…
        number: String,
    },
    /// Play a recorded AMI transcript (FILE and FILE.times) as a fake Asterisk
    /// for browser tests and demos; prints the ami:// URL to connect to.
    #[command(hide = true)]
    AmiServe {
        file: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Pace against the recording: 0.5 = half speed; 0 = as fast as possible.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Extra seconds between the first event and the rest, so a test can
        /// get its browser ready after the service has connected.
        #[arg(long, default_value_t = 0.0)]
        delay: f64,
    },
    /// Manage call routing rules (a running server picks changes up within seconds).
    #[command(subcommand)]
    Routing(RoutingCommand),
}

#[derive(Subcommand)]
enum RoutingCommand {
    /// List rules in the order they are evaluated.
    List,
    /// Add a rule.
    Add(Box<AddRule>),
    /// Remove a rule by id.
    Rm { id: i64 },
}

#[derive(clap::Args)]
struct AddRule {
    /// sticky | prefix | did | hours | round_robin | least_loaded
    #[arg(long)]
    kind: String,
    #[arg(long)]
    name: String,
    /// Lower runs first.
    #[arg(long, default_value_t = 100)]
    priority: i64,
    /// prefix rules: an E.164 prefix such as +49.
    #[arg(long)]
    prefix: Option<String>,
    /// did rules: the dialled number.
    #[arg(long)]
    did: Option<String>,
    /// hours rules: time zone, e.g. Europe/Berlin.
    #[arg(long)]
    tz: Option<String>,
    /// hours rules: days, e.g. mon-fri or sat,sun.
    #[arg(long, default_value = "mon-fri")]
    days: String,
    /// hours rules: opening time, 09:00.
    #[arg(long)]
    from: Option<String>,
    /// hours rules: closing time, 18:00.
    #[arg(long)]
    to: Option<String>,
    /// user:LOGIN, team:NAME (or user:ID, team:ID), or a PBX target such as Queue/support.
    #[arg(long)]
    target: Option<String>,
    /// hours rules: where calls outside the hours go.
    #[arg(long)]
    outside_target: Option<String>,
    /// Store the rule switched off.
    #[arg(long)]
    disabled: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from standard input, or generated and printed.
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        /// agent | supervisor | manager | admin
        #[arg(long)]
        role: String,
        /// Team name (created when missing).
        #[arg(long)]
        team: Option<String>,
        /// Phone extension(s) that ring this user; repeat for several.
        #[arg(long = "ext")]
        extensions: Vec<String>,
        /// A phone as Asterisk names the endpoint, optionally with the
        /// extension people dial (`PJSIP/anna-desk=101`, `SIP/150010002`);
        /// repeat for several. Without any, `[pbx] device` names the phone
        /// of each extension.
        #[arg(long = "device")]
        devices: Vec<String>,
        /// The number the customer sees on this user's click-to-calls.
        #[arg(long)]
        presented_number: Option<String>,
        /// en | ru | uk | de
        #[arg(long, default_value = "en")]
        locale: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Set a new password (read from standard input, or generated and printed).
    Passwd {
        login: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import contacts from a CSV file with a header row.
    Contacts {
        file: PathBuf,
        /// Map a field to a column header, e.g. --map name="Full name" --map phone=Mobile.
        /// Fields: name, company, phone, email, owner, tags, notes. Unmapped fields are guessed from headers.
        #[arg(long = "map", value_parser = parse_mapping)]
        map: Vec<(import::Field, String)>,
        /// Column delimiter, e.g. ';'.
        #[arg(long, default_value = ",")]
        delimiter: char,
    },
}

fn parse_mapping(s: &str) -> Result<(import::Field, String), String> {
    let (f, h) = s.split_once('=').ok_or("expected FIELD=HEADER")?;
    let field = import::Field::parse(f.trim()).ok_or_else(|| {
        format!("unknown field `{f}`: use name, company, phone, email, owner, tags or notes")
    })?;
    Ok((field, h.to_owned()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringside: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Demo) && std::env::var_os("RINGSIDE_DATABASE_URL").is_none() {
        config.database_url = "sqlite://ringside-demo.db".to_owned();
    }
    telemetry::init(config.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringside: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringside: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            startup::Server::build(config).await?.run().await?;
        }
        Command::Demo => {
            let started = std::time::Instant::now();
            let mut config = config;
            let real_pbx = config.ami_url.as_deref().map(demo::pbx_address);
            // Without a PBX, a simulated one places the captured calls again
            // and again so screen pops show at once.
            let _simulated_pbx = match config.ami_url {
                Some(_) => None,
                None => {
                    use ringside::telephony::ami::fake::FakeAmi;
                    let fake =
                        FakeAmi::start(demo::pbx_script(300, std::time::Duration::from_secs(20)))
                            .await?;
                    config.ami_url = Some(fake.url());
                    Some(fake)
                }
            };
            let server = startup::Server::build(config).await?;
            let db = server.state.db.clone();
            let seeded = demo::seed(&db, &server.state.phones).await?;
            if seeded {
                // In memory before the PBX link starts (in `run`), so the
                // first simulated call already rings the demo's agents.
                server.state.callers.rebuild(&db).await?;
                server.state.extensions.reload(&db).await?;
                server.state.routing.reload(&db).await?;
            }
            let passwords = demo::reset_passwords(&db).await?;
            let addr = server.local_addr()?;
            println!(
                "Ringside demo on http://{addr}  (ready in {} ms{})",
                started.elapsed().as_millis(),
                if seeded { ", demo data created" } else { "" }
            );
            match &real_pbx {
                Some(pbx) => println!(
                    "No simulated calls: Ringside follows the Asterisk at {pbx} over AMI (RINGSIDE_AMI_URL); its calls to 101 (anna), 102 (boris), 103 (clara) and 110 (maria) pop cards."
                ),
                None => println!(
                    "A simulated phone system rings anna (101), boris (102) and clara (103) every 20 s (set RINGSIDE_AMI_URL to connect your Asterisk)."
                ),
            }
            println!("Demo users (passwords are new at every start):");
            for (login, role, password) in passwords {
                println!("  {login:<8} {role:<11} {password}");
            }
            println!(
                "Log in: curl -s -X POST http://{addr}/api/v1/auth/login -H 'content-type: application/json' -d '{{\"login\":\"anna\",\"password\":\"…\"}}'"
            );
            server.run().await?;
        }
        Command::Migrate => {
            startup::open_db(&config).await?;
            println!("database is up to date: {}", config.database_url);
        }
        Command::Backup { file } => {
            let db = startup::open_db(&config).await?;
            db.backup_sqlite(&file).await?;
            println!("backup written to {}", file.display());
        }
        Command::User(cmd) => return user_command(cmd, &config).await,
        Command::Routing(cmd) => return routing_command(cmd, &config).await,
        Command::Lookup { number } => {
            let db = startup::open_db(&config).await?;
            let callers = ringside::crm::directory::Callers::load(&db, &config).await?;
            let found = ringside::crm::directory::identify(&db, &callers, number.trim()).await?;
            println!("{}", serde_json::to_string_pretty(&found)?);
            if found.matched == "none" {
                return Ok(ExitCode::from(1));
            }
        }
        Command::AmiReplay { file } => {
            let mut out = std::io::stdout().lock();
            let cfg = ringside::telephony::ami::mapper::MapperConfig::from_config(&config);
            ringside::telephony::ami::run_replay_file_with(
                &file,
                &config.default_region,
                cfg,
                &mut out,
            )?;
        }
        Command::AmiServe {
            file,
            listen,
            speed,
            delay,
        } => ami_serve(&file, listen, speed, delay).await?,
        Command::Import(ImportCommand::Contacts {
            file,
            map,
            delimiter,
        }) => {
            if !delimiter.is_ascii() {
                anyhow::bail!("--delimiter must be a single ASCII character");
            }
            let db = startup::open_db(&config).await?;
            let phones = PhoneNormalizer::new(&config.default_region)
                .map_err(|e| anyhow::anyhow!("default region: {e}"))?;
            let f = std::fs::File::open(&file)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(len),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            let opts = import::ImportOptions {
                map,
                delimiter: Some(delimiter as u8),
                batch: 1000,
            };
            let reader = std::io::BufReader::with_capacity(256 * 1024, bar.wrap_read(f));
            let report = import::import_contacts(&db, &phones, reader, &opts, |line, reason| {
                bar.suspend(|| eprintln!("line {line}: {reason}"));
            })
            .await?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{} rows: {} contacts created, {} merged into existing contacts by phone, {} rejected ({:.1} s, {:.0} rows/s)",
                report.rows,
                report.created,
                report.merged,
                report.bad,
                secs,
                report.rows as f64 / secs.max(1e-9)
            );
            if report.bad > 0 && report.created + report.merged == 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ami_serve(
    file: &std::path::Path,
    listen: std::net::SocketAddr,
    speed: f64,
    delay: f64,
) -> anyhow::Result<()> {
    use ringside::telephony::ami::fake::{FakeAmi, FakeScript, FakeState, Pace};
    use std::io::Write;
    let ami =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let times_path = ringside::telephony::ami::replay::times_path(file)
        .ok_or_else(|| anyhow::anyhow!("no .times file beside {}", file.display()))?;
    let times = std::fs::read_to_string(&times_path)?;
    let mut script = FakeScript::from_transcript(&ami, &times);
    if speed > 0.0 {
        script.pace = Pace::Recorded { speed };
    }
    let shift = (delay.max(0.0) * 1e9) as u64;
    for (t, _) in script.events.iter_mut().skip(1) {
        *t += shift;
    }
    let fake = FakeAmi::start_on(listen, FakeState::new(script)).await?;
    println!("ami-serve listening: {}", fake.url());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    fake.shutdown().await;
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        auth::check_password_policy(&p)?;
        Ok((p, false))
    } else {
        Ok((auth::random_password(), true))
    }
}

async fn user_command(cmd: UserCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let db = startup::open_db(config).await?;
    match cmd {
        UserCommand::Add {
            login,
            name,
            role,
            team,
            extensions,
            devices,
            presented_number,
            locale,
            password_stdin,
        } => {
            if !ROLES.contains(&role.as_str()) {
                anyhow::bail!("--role must be one of {}", ROLES.join(", "));
            }
            ringside::http::users::check_extensions(&extensions)
                .map_err(|e| anyhow::anyhow!("--ext: {}", e.message))?;
            let devices: Vec<ringside::store::users::Device> = devices
                .iter()
                .map(|d| match d.split_once('=') {
                    Some((device, ext)) => ringside::store::users::Device {
                        device: device.trim().to_owned(),
                        extension: Some(ext.trim().to_owned()),
                    },
                    None => ringside::store::users::Device {
                        device: d.trim().to_owned(),
                        extension: None,
                    },
                })
                .collect();
            ringside::http::users::check_devices(&devices)
                .map_err(|e| anyhow::anyhow!("--device: {}", e.message))?;
            let presented_number = presented_number
                .map(|n| ringside::config::check_presented_number(&n))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--presented-number: {e}"))?;
            let team_id = match team {
                Some(t) => match db.teams().await?.into_iter().find(|x| x.name == t) {
                    Some(x) => Some(x.id),
                    None => Some(db.create_team(&t).await?.id),
                },
                None => None,
            };
            let (password, generated) = read_password(password_stdin)?;
            let hash = auth::hash_password(&password);
            let user = db
                .create_user(NewUser {
                    login: &login,
                    name: &name,
                    role: &role,
                    team_id,
                    locale: &locale,
                    password_hash: &hash,
                    extensions: &extensions,
                })
                .await?;
            let user = if devices.is_empty() && presented_number.is_none() {
                user
            } else {
                db.set_user_phones(user.id, Some(&devices), Some(presented_number.as_deref()))
                    .await?
            };
            db.audit(
                None,
                "user.create",
                &format!("{} ({}) from the command line", user.login, user.role),
                None,
            )
            .await?;
            println!(
                "user {} ({}) created, id {}",
                user.login, user.role, user.id
            );
            if generated {
                println!("password: {password}");
                if !std::io::stdout().is_terminal() {
                    eprintln!("note: the generated password was written to standard output");
                }
            }
        }
        UserCommand::List => {
            println!(
                "{:<5} {:<16} {:<11} {:<6} {:<12} name",
                "id", "login", "role", "active", "extensions"
            );
            for u in db.users().await? {
                println!(
                    "{:<5} {:<16} {:<11} {:<6} {:<12} {}",
                    u.id,
                    u.login,
                    u.role,
                    if u.active != 0 { "yes" } else { "no" },
                    u.extensions
                        .iter()
                        .cloned()
                        .chain(u.devices.iter().map(|d| match &d.extension {
                            Some(e) => format!("{}={e}", d.device),
                            None => d.device.clone(),
                        }))
                        .collect::<Vec<_>>()
                        .join(","),
                    u.name
                );
            }
        }
        UserCommand::Passwd {
            login,
            password_stdin,
        } => {
            let id = db
                .user_id_by_login(&login)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with login `{login}`"))?;
            let (password, generated) = read_password(password_stdin)?;
            db.update_user(
                id,
                UserChanges {
                    password_hash: Some(auth::hash_password(&password)),
                    ..Default::default()
                },
            )
            .await?;
            db.audit(
                None,
                "user.passwd",
                &format!("{login} from the command line"),
                None,
            )
            .await?;
            println!("password of {login} changed; their sessions were ended");
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `user:LOGIN|ID`, `team:NAME|ID`, `pbx:RAW` or a raw PBX target.
async fn cli_target(
    db: &ringside::store::Db,
    raw: &str,
) -> anyhow::Result<ringside::routing::rules::TargetSpec> {
    use ringside::routing::rules::TargetSpec;
    Ok(match raw.split_once(':') {
        Some(("user", who)) => match who.parse() {
            Ok(id) => TargetSpec::UserId(id),
            Err(_) => TargetSpec::UserId(
                db.user_id_by_login(who)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user with login `{who}`"))?,
            ),
        },
        Some(("team", which)) => match which.parse() {
            Ok(id) => TargetSpec::TeamId(id),
            Err(_) => TargetSpec::TeamId(
                db.teams()
                    .await?
                    .into_iter()
                    .find(|t| t.name == which)
                    .ok_or_else(|| anyhow::anyhow!("no team named `{which}`"))?
                    .id,
            ),
        },
        Some(("pbx", rest)) => TargetSpec::Pbx(rest.to_owned()),
        _ => TargetSpec::Pbx(raw.to_owned()),
    })
}

async fn routing_command(cmd: RoutingCommand, config: &Config) -> anyhow::Result<ExitCode> {
    use ringside::routing::rules::{RuleInput, RuleView, ScheduleSpec, TargetSpec, build_rule};
    let db = startup::open_db(config).await?;
    match cmd {
        RoutingCommand::List => {
            println!(
                "{:<5} {:<8} {:<12} {:<3} {:<24} {:<20} name",
                "id", "priority", "kind", "on", "match", "target"
            );
            let show = |t: &Option<TargetSpec>| match t {
                Some(TargetSpec::UserId(id)) => format!("user:{id}"),
                Some(TargetSpec::TeamId(id)) => format!("team:{id}"),
                Some(TargetSpec::Pbx(s)) => s.clone(),
                None => "-".to_owned(),
            };
            for row in db.routing_rules().await? {
                let v = RuleView::from(&row);
                let matched = match (&v.prefix, &v.did, &v.schedule) {
                    (Some(p), _, _) => p.clone(),
                    (_, Some(d), _) => d.clone(),
                    (_, _, Some(s)) => {
                        format!("{} {}-{} {}", s.days.join(","), s.from, s.to, s.timezone)
                    }
                    _ => "-".to_owned(),
                };
                let mut target = show(&v.target);
                if v.outside_target.is_some() {
                    target = format!("{target} / outside {}", show(&v.outside_target));
                }
                println!(
                    "{:<5} {:<8} {:<12} {:<3} {:<24} {:<20} {}",
                    v.id,
                    v.priority,
                    v.kind,
                    if v.enabled { "yes" } else { "no" },
                    matched,
                    target,
                    v.name
                );
            }
        }
        RoutingCommand::Add(add) => {
            let AddRule {
                kind,
                name,
                priority,
                prefix,
                did,
                tz,
                days,
                from,
                to,
                target,
                outside_target,
                disabled,
            } = *add;
            let schedule = match (tz, from, to) {
                (None, None, None) => None,
                (Some(timezone), Some(from), Some(to)) => Some(ScheduleSpec {
                    timezone,
                    days: days.split(',').map(str::to_owned).collect(),
                    from,
                    to,
                }),
                _ => anyhow::bail!("an hours rule needs --tz, --from and --to"),
            };
            let target = match target {
                Some(t) => Some(cli_target(&db, &t).await?),
                None => None,
            };
            let outside_target = match outside_target {
                Some(t) => Some(cli_target(&db, &t).await?),
                None => None,
            };
            let data = build_rule(
                RuleInput {
                    priority: Some(priority),
                    name: Some(name),
                    kind: Some(kind),
                    enabled: Some(!disabled),
                    prefix,
                    did,
                    schedule,
                    target,
                    outside_target,
                },
                None,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let (users, teams) = ringside::routing::rules::referenced(&data);
            for id in users {
                db.user(id)
                    .await
                    .map_err(|_| anyhow::anyhow!("no user with id {id}"))?;
            }
            for id in teams {
                if !db.team_exists(id).await? {
                    anyhow::bail!("no team with id {id}");
                }
            }
            let row = db.create_routing_rule(&data).await?;
            db.audit(
                None,
                "routing.rule.create",
                &format!("{} ({}) from the command line", row.name, row.kind),
                None,
            )
            .await?;
            println!("rule {} ({}) added, id {}", row.name, row.kind, row.id);
        }
        RoutingCommand::Rm { id } => {
            let row = db
                .routing_rule(id)
                .await
                .map_err(|_| anyhow::anyhow!("no routing rule with id {id}"))?;
            db.delete_routing_rule(id).await?;
            db.audit(
                None,
                "routing.rule.delete",
                &format!("{} ({}) from the command line", row.name, row.kind),
                None,
            )
            .await?;
            println!("rule {id} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
