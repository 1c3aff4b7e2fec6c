//! What the continuity document needs beyond backups: who to call, in
//! which order, what the platform depends on, how long the law says data
//! must be kept, how often restores must be tested, and when the plan was
//! last reviewed.
//!
//! The seed's PRA/PCA keeps these as tables full of `[À REMPLIR]`; the
//! rendered plan (`reprise plan render`) and its lint (`reprise plan
//! lint`) read them from here, so a contact's phone number is written once
//! and a stale review date is found by a program, not by an audit. Kept
//! apart from the backup sections (`lib.rs`) because nothing that takes or
//! restores a backup reads them.
//!
//! Dates are calendar dates (`"2026-10-05"`, or an unquoted TOML date);
//! lengths are durations (escalation delays) or periods (review and test
//! intervals), as in the rest of the plan.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::Date;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::duration::Period;
use crate::Ctx;

/// A person or desk to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The plan's key for it (`[contacts.NAME]`), used by escalation and tests.
    pub id: String,
    pub name: String,
    pub role: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// When someone can be reached (`24/7`, `heures ouvrées`).
    pub availability: Option<String>,
    /// When these details were last checked; `None`: never.
    pub reviewed: Option<Date>,
}

/// One rung of the escalation ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationLevel {
    /// 1, 2, ... in the order the plan lists them.
    pub level: usize,
    /// Time since the incident was detected at which this level is reached.
    pub after: Duration,
    /// Contact IDs alerted at this level.
    pub who: Vec<String>,
    pub action: String,
}

/// An external service the platform needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub id: String,
    pub service: String,
    pub criticality: Criticality,
    /// What to do while it is down; `None`: there is none.
    pub alternative: Option<String>,
    /// Where its support is reached (a portal, a phone number).
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Criticality {
    Critical,
    Important,
    Low,
}

impl Criticality {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Critical => "critical",
            Criticality::Important => "important",
            Criticality::Low => "low",
        }
    }
}

/// A legal retention duration: how long a kind of data must be kept, and
/// which components hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalRetention {
    pub id: String,
    /// The data, in words (`Dossiers patients`).
    pub data: String,
    pub retain: Period,
    /// As written (`20y`), for documents.
    pub retain_text: String,
    pub components: Vec<String>,
    /// The text that requires it (`Code de la santé publique R1112-7`).
    pub basis: Option<String>,
}

/// A restore test the plan requires at least every `every`: satisfied by
/// a passed drill that restored all of `components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRequirement {
    pub id: String,
    pub components: Vec<String>,
    pub every: Period,
    pub every_text: String,
    /// Contact ID of who runs it.
    pub responsible: Option<String>,
}

/// When the plan was reviewed, and how often it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Contact ID of the plan's owner (who signs it).
    pub owner: Option<String>,
    pub version: Option<String>,
    pub reviewed: Option<Date>,
    /// The next review: as written, else `reviewed` + `every`.
    pub next: Option<Date>,
    pub every: Period,
    /// How often contact details must be checked (the seed: quarterly).
    pub contacts_every: Period,
}

impl Default for Review {
    fn default() -> Review {
        Review { owner: None, version: None, reviewed: None, next: None, every: Period { months: 12, seconds: 0 }, contacts_every: Period { months: 3, seconds: 0 } }
    }
}

/// One line of the plan's revision history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub version: String,
    pub date: Date,
    pub author: String,
    pub changes: String,
}

/// Everything above, as the plan declares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Continuity {
    pub contacts: BTreeMap<String, Contact>,
    pub escalation: Vec<EscalationLevel>,
    pub dependencies: BTreeMap<String, Dependency>,
    pub legal: BTreeMap<String, LegalRetention>,
    pub tests: BTreeMap<String, TestRequirement>,
    pub review: Review,
    pub revisions: Vec<Revision>,
}

impl Continuity {
    /// The legal retentions that apply to `component`.
    pub fn legal_for<'a>(&'a self, component: &'a str) -> impl Iterator<Item = &'a LegalRetention> + 'a {
        self.legal.values().filter(move |l| l.components.iter().any(|c| c == component))
    }
}

// ---- raw, spanned form ----

/// A date as TOML writes it (`2026-10-05`) or as a string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawDate {
    Toml(toml::value::Datetime),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContact {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    role: Option<Spanned<String>>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<Spanned<String>>,
    #[serde(default)]
    availability: Option<String>,
    #[serde(default)]
    reviewed: Option<Spanned<RawDate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEscalation {
    after: Spanned<String>,
    who: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDependency {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    criticality: Option<Spanned<String>>,
    #[serde(default)]
    alternative: Option<String>,
    #[serde(default)]
    contact: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLegal {
    #[serde(default)]
    data: Option<String>,
    retain: Spanned<String>,
    components: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    basis: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    components: Spanned<Vec<Spanned<String>>>,
    every: Spanned<String>,
    #[serde(default)]
    responsible: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReview {
    #[serde(default)]
    owner: Option<Spanned<String>>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    reviewed: Option<Spanned<RawDate>>,
    #[serde(default)]
    next: Option<Spanned<RawDate>>,
    #[serde(default)]
    every: Option<Spanned<String>>,
    #[serde(default)]
    contacts_every: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRevision {
    version: String,
    date: Spanned<RawDate>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    changes: Option<String>,
}

/// The continuity sections of the raw plan.
#[derive(Default)]
pub(crate) struct RawContinuity {
    pub contacts: BTreeMap<String, Spanned<RawContact>>,
    pub escalation: Vec<RawEscalation>,
    pub dependencies: BTreeMap<String, Spanned<RawDependency>>,
    pub legal: BTreeMap<String, Spanned<RawLegal>>,
    pub tests: BTreeMap<String, Spanned<RawTest>>,
    pub review: Option<RawReview>,
    pub revisions: Vec<RawRevision>,
}

fn date(cx: &mut Ctx<'_>, d: &Spanned<RawDate>, what: &str) -> Option<Date> {
    let text = match d.get_ref() {
        RawDate::Toml(t) => {
            let (Some(date), None) = (t.date, t.time) else {
                cx.at(d.span().start, format!("{what} = {t} is not a date"), format!("write the day only, e.g. {what} = \"2026-10-05\""));
                return None;
            };
            format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
        }
        RawDate::Text(s) => s.trim().to_owned(),
    };
    if let Ok(date) = text.parse::<Date>() {
        return Some(date);
    }
    cx.at(d.span().start, format!("{what} = \"{text}\" is not a date"), format!("write it as YYYY-MM-DD, e.g. {what} = \"2026-10-05\""));
    None
}

fn period(cx: &mut Ctx<'_>, s: &Spanned<String>, what: &str) -> Option<(Period, String)> {
    cx.period(s, what).map(|p| (p, s.get_ref().trim().to_owned()))
}

/// Checks that every name in `names` is a declared component.
fn components(cx: &mut Ctx<'_>, names: &Spanned<Vec<Spanned<String>>>, known: &[&str], owner: &str) -> Vec<String> {
    if names.get_ref().is_empty() {
        cx.at(names.span().start, format!("{owner} names no component"), format!("list the components it covers, e.g. components = [\"{}\"]", known.first().unwrap_or(&"database")));
    }
    for n in names.get_ref() {
        if !known.contains(&n.get_ref().as_str()) {
            cx.at(n.span().start, format!("{owner} names component '{}', which the plan does not declare", n.get_ref()), format!("use one of: {}", if known.is_empty() { "none declared".to_owned() } else { known.join(", ") }));
        }
    }
    names.get_ref().iter().map(|n| n.get_ref().clone()).collect()
}

fn contact_ref(cx: &mut Ctx<'_>, name: &Spanned<String>, contacts: &BTreeMap<String, Contact>, owner: &str) {
    if !contacts.contains_key(name.get_ref()) {
        let known: Vec<&str> = contacts.keys().map(String::as_str).collect();
        cx.at(
            name.span().start,
            format!("{owner} names contact '{}', which the plan does not declare", name.get_ref()),
            if known.is_empty() { format!("declare it under [contacts.{}] (name, role, phone or email, reviewed)", name.get_ref()) } else { format!("use one of: {}", known.join(", ")) },
        );
    }
}

/// Validates the continuity sections; `components` are the plan's.
pub(crate) fn parse(cx: &mut Ctx<'_>, raw: RawContinuity, components_known: &[&str]) -> Continuity {
    let mut out = Continuity::default();
    for (id, c) in raw.contacts {
        let at = c.span().start;
        let c = c.into_inner();
        let name = match c.name {
            Some(n) if !n.get_ref().trim().is_empty() => n.into_inner(),
            _ => {
                cx.at(at, format!("contact '{id}' has no name"), "add name = \"Dr. Claire Martin\" (who answers)");
                String::new()
            }
        };
        let role = match c.role {
            Some(r) if !r.get_ref().trim().is_empty() => r.into_inner(),
            _ => {
                cx.at(at, format!("contact '{id}' has no role"), "add role = \"Responsable PRA/PCA\" (what they do in an incident)");
                String::new()
            }
        };
        if let Some(e) = &c.email
            && !e.get_ref().contains('@')
        {
            cx.at(e.span().start, format!("email '{}' of contact '{id}' has no @", e.get_ref()), "write the whole address, e.g. email = \"astreinte@medicapp.fr\"");
        }
        if c.phone.is_none() && c.email.is_none() {
            cx.at(at, format!("contact '{id}' has neither phone nor email"), "add phone = \"+33 ...\" or email = \"...\": a contact must be reachable");
        }
        let reviewed = c.reviewed.as_ref().and_then(|d| date(cx, d, "reviewed"));
        out.contacts.insert(id.clone(), Contact { id, name, role, phone: c.phone, email: c.email.map(Spanned::into_inner), availability: c.availability, reviewed });
    }
    let mut previous: Option<Duration> = None;
    for (i, e) in raw.escalation.into_iter().enumerate() {
        let owner = format!("escalation level {}", i + 1);
        let after = cx.duration(&e.after, "after").unwrap_or_default();
        if let Some(p) = previous
            && after <= p
        {
            cx.at(e.after.span().start, format!("{owner} comes after {} but is reached no later than the level before it", e.after.get_ref()), "list the levels in the order they are reached, each with a longer `after`");
        }
        previous = Some(after);
        if e.who.get_ref().is_empty() {
            cx.at(e.who.span().start, format!("{owner} alerts nobody"), "add who = [\"CONTACT\"], naming contacts declared under [contacts.NAME]");
        }
        for w in e.who.get_ref() {
            contact_ref(cx, w, &out.contacts, &owner);
        }
        out.escalation.push(EscalationLevel { level: i + 1, after, who: e.who.into_inner().into_iter().map(Spanned::into_inner).collect(), action: e.action.unwrap_or_default() });
    }
    for (id, d) in raw.dependencies {
        let at = d.span().start;
        let d = d.into_inner();
        let criticality = match d.criticality.as_ref().map(|c| c.get_ref().as_str()) {
            Some("critical") => Criticality::Critical,
            None | Some("important") => Criticality::Important,
            Some("low") => Criticality::Low,
            Some(other) => {
                cx.at(d.criticality.as_ref().map_or(at, |c| c.span().start), format!("dependency '{id}' has criticality '{other}'"), "use criticality = \"critical\", \"important\" or \"low\"");
                Criticality::Important
            }
        };
        out.dependencies.insert(id.clone(), Dependency { service: d.service.unwrap_or_else(|| id.clone()), id, criticality, alternative: d.alternative, contact: d.contact });
    }
    for (id, l) in raw.legal {
        let l = l.into_inner();
        let owner = format!("legal retention '{id}'");
        let components = components(cx, &l.components, components_known, &owner);
        let Some((retain, retain_text)) = period(cx, &l.retain, "retain") else { continue };
        out.legal.insert(id.clone(), LegalRetention { data: l.data.unwrap_or_else(|| id.clone()), id, retain, retain_text, components, basis: l.basis });
    }
    for (id, t) in raw.tests {
        let t = t.into_inner();
        let owner = format!("test '{id}'");
        let components = components(cx, &t.components, components_known, &owner);
        if let Some(r) = &t.responsible {
            contact_ref(cx, r, &out.contacts, &owner);
        }
        let Some((every, every_text)) = period(cx, &t.every, "every") else { continue };
        out.tests.insert(id.clone(), TestRequirement { id, components, every, every_text, responsible: t.responsible.map(Spanned::into_inner) });
    }
    if let Some(r) = raw.review {
        let mut review = Review::default();
        if let Some(o) = &r.owner {
            contact_ref(cx, o, &out.contacts, "review");
        }
        review.owner = r.owner.map(Spanned::into_inner);
        review.version = r.version;
        review.reviewed = r.reviewed.as_ref().and_then(|d| date(cx, d, "reviewed"));
        if let Some((p, _)) = r.every.as_ref().and_then(|e| period(cx, e, "every")) {
            review.every = p;
        }
        if let Some((p, _)) = r.contacts_every.as_ref().and_then(|e| period(cx, e, "contacts_every")) {
            review.contacts_every = p;
        }
        review.next = match &r.next {
            Some(n) => {
                let next = date(cx, n, "next");
                if let (Some(next), Some(reviewed)) = (next, review.reviewed)
                    && next <= reviewed
                {
                    cx.at(n.span().start, format!("the next review ({next}) is not after the last one ({reviewed})"), "set next to a later date, or remove it (reviewed + every is used)");
                }
                next
            }
            None => review.reviewed.map(|d| add_period(d, review.every)),
        };
        out.review = review;
    }
    for r in raw.revisions {
        let Some(date) = date(cx, &r.date, "date") else { continue };
        out.revisions.push(Revision { version: r.version, date, author: r.author.unwrap_or_default(), changes: r.changes.unwrap_or_default() });
    }
    out
}

/// The calendar date `period` after `date` (UTC midnight; months on the calendar).
#[must_use]
pub fn add_period(date: Date, period: Period) -> Date {
    let start = date.to_zoned(jiff::tz::TimeZone::UTC).map_or(jiff::Timestamp::MAX, |z| z.timestamp());
    period.after(start).to_zoned(jiff::tz::TimeZone::UTC).date()
}
