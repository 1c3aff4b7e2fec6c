//! Connecting to PostgreSQL.
//!
//! `postgres` (rust-postgres) does not read libpq's environment, so the
//! usual defaults are applied here: PGHOST (else the Debian socket folder),
//! PGPORT, PGUSER (else the OS user), PGDATABASE, and the password from the
//! variable the plan names (PGPASSWORD by default) — never from the plan.

use std::str::FromStr;
use std::time::Duration;

use crate::error::{PgError, Result};

/// Builds a client configuration from a libpq-style string or URL.
pub fn config(conn: &str, password_env: Option<&str>) -> Result<postgres::Config> {
    let mut cfg = postgres::Config::from_str(conn).map_err(|e| PgError::Connect { target: redact(conn), message: e.to_string() })?;
    if cfg.get_hosts().is_empty() {
        let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".into());
        cfg.host(&host);
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .ok()
            .or_else(|| nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten().map(|u| u.name))
            .unwrap_or_else(|| "postgres".into());
        cfg.user(&user);
    }
    if cfg.get_dbname().is_none() {
        if let Ok(db) = std::env::var("PGDATABASE") {
            cfg.dbname(&db);
        }
    }
    if cfg.get_password().is_none() {
        if let Ok(p) = std::env::var(password_env.unwrap_or("PGPASSWORD")) {
            cfg.password(p);
        }
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    cfg.application_name("reprise");
    Ok(cfg)
}

pub fn connect(conn: &str, password_env: Option<&str>) -> Result<postgres::Client> {
    let cfg = config(conn, password_env)?;
    cfg.connect(postgres::NoTls).map_err(|e| PgError::Connect { target: describe(&cfg), message: first_line(&e) })
}

fn first_line(e: &postgres::Error) -> String {
    let s = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
    };
    s.lines().next().unwrap_or_default().to_owned()
}

/// Where a configuration points, without the password.
#[must_use]
pub fn describe(cfg: &postgres::Config) -> String {
    let host = cfg
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("host={host} port={port} user={} dbname={}", cfg.get_user().unwrap_or(""), cfg.get_dbname().unwrap_or(""))
}

/// A connection string with any password removed, for messages.
#[must_use]
pub fn redact(conn: &str) -> String {
    if let Some(at) = conn.find('@') {
        if let Some(scheme) = conn.find("://") {
            if let Some(colon) = conn[scheme + 3..at].find(':') {
                return format!("{}:***{}", &conn[..scheme + 3 + colon], &conn[at..]);
            }
        }
    }
    conn.split_whitespace()
        .map(|kv| if kv.to_ascii_lowercase().starts_with("password=") { "password=***" } else { kv })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a query expected to return one text value.
pub fn query_text(client: &mut postgres::Client, sql: &str) -> Result<String> {
    let row = client.query_one(sql, &[]).map_err(|e| PgError::sql(&e))?;
    Ok(row.get::<_, String>(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_appear() {
        assert_eq!(super::redact("host=x password=hunter2 user=u"), "host=x password=*** user=u");
        assert_eq!(super::redact("postgresql://u:hunter2@h/db"), "postgresql://u:***@h/db");
    }
}
