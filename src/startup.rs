//! Starting the service: open and migrate the database, bind the HTTP port,
//! serve until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, app};
use crate::store::Db;

/// Opens the database and applies pending migrations.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    Ok(db)
}

/// A bound, ready-to-serve instance.
pub struct Server {
    pub state: AppState,
    pub listener: TcpListener,
    /// FastAGI listener, when `routing.agi_bind` is set.
    pub agi: Option<TcpListener>,
    /// The PBX link, started by [`Server::run`] once everything its events
    /// are matched against is in memory.
    ami: Option<crate::telephony::ami::client::ClientConfig>,
}

impl Server {
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let db = open_db(&config).await?;
        let listener = TcpListener::bind(config.http_bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http_bind))?;
        let agi = match config.routing.agi_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for FastAGI on {addr}: {e}"))?,
            ),
            None => None,
        };
        let ami = crate::telephony::ami::client::ClientConfig::from_config(&config)
            .map_err(|e| anyhow::anyhow!("ami_url: {e}"))?;
        let state = AppState::load(db, config).await?;
        tracing::info!(numbers = state.callers.len(), "caller index built");
        state
            .callers
            .clone()
            .spawn_sync(state.db.clone(), std::time::Duration::from_secs(3));
        state
            .extensions
            .clone()
            .spawn_sync(state.db.clone(), std::time::Duration::from_secs(3));
        state.routing.reload(&state.db).await?;
        Ok(Server {
            state,
            listener,
            agi,
            ami,
        })
    }

    /// Starts the dispatcher and then the PBX link: the first AMI event is
    /// read only once users and their phones, the caller index and the
    /// routing rules are loaded (and whatever the caller did after `build`,
    /// like the demo's seeding), so no early call is attributed to nobody.
    fn start_calls(&mut self) {
        let feed = self.ami.take().map(|mut cfg| {
            cfg.devices = Some(self.state.extensions.clone());
            let (client, feed) = crate::telephony::ami::client::start(cfg);
            self.state.pbx = Some(client);
            feed
        });
        let dispatch = crate::dispatch::Dispatch::start(self.state.clone());
        let _ = self.state.dispatch.set(dispatch.clone());
        if let Some(feed) = feed {
            dispatch.follow_ami(feed);
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(mut self) -> anyhow::Result<()> {
        self.start_calls();
        let addr = self.local_addr()?;
        let refresh = self.state.routing.spawn_refresh(self.state.db.clone());
        let agi = match self.agi {
            Some(listener) => {
                let agi_addr = listener.local_addr()?;
                tracing::info!(%agi_addr, "fastagi listening on {agi_addr}");
                Some(tokio::spawn(crate::routing::agi::serve(
                    listener,
                    self.state.clone(),
                )))
            }
            None => None,
        };
        let router = app(self.state.clone());
        tracing::info!(%addr, "ringside ready: http://{addr}");
        let listener =
            crate::http::serve::ConnListener::new(self.listener, self.state.config.http.clone());
        axum::serve(listener, crate::http::serve::MakeConnService::new(router))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        refresh.abort();
        if let Some(agi) = agi {
            agi.abort();
        }
        tracing::info!("ringside stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
