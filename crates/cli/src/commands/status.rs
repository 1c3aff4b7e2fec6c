//! `status`: flags → `reprise_ops::status` → a table (or JSON).

use anyhow::Result;

use crate::args::StatusArgs;
use crate::context::Context;
use crate::output::count;

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    let components: Vec<String> = args.component.iter().cloned().collect();
    let out = reprise_ops::status::status(&ctx.ws, &components)?;
    if ctx.json() {
        return ctx.print_json(&out);
    }
    ctx.say(format!("{:<20} {:<9} {:<20} {:>12} {:>10} {:<20} {:>12}", "component", "type", "last backup (UTC)", "RPO now", "objective", "restorable until", "PITR window"));
    for s in &out {
        let f = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string());
        ctx.say(format!(
            "{:<20} {:<9} {:<20} {:>12} {:>10} {:<20} {:>12}{}",
            s.component,
            s.kind,
            f(s.last_backup),
            s.rpo_seconds.map_or_else(|| "no backup".to_owned(), human),
            s.rpo_objective_seconds.map_or_else(|| "-".to_owned(), |o| human(o as f64)),
            f(s.newest_restorable),
            s.pitr_window_seconds.map_or_else(|| "-".to_owned(), human),
            match (s.rpo_met, s.alerts.is_empty()) {
                (Some(false), _) => "  OBJECTIVE MISSED",
                (_, false) => "  ALERT",
                (Some(true), true) => "  ok",
                (None, true) => "",
            }
        ));
        let p = &s.copies;
        let yes_no = |o: Option<bool>| o.map_or("unknown (a site is missing)", |o| if o { "yes" } else { "no" });
        ctx.say(format!(
            "  copies: {} (production + {}), media: {}, off-site: {}: 3-2-1 {}",
            p.copies,
            count(p.copies - 1, "repository", "repositories"),
            if p.media.is_empty() { "none".to_owned() } else { format!("{} ({})", p.media.len(), p.media.join(", ")) },
            yes_no(p.off_site),
            if p.three_two_one { "holds" } else { "NOT MET" }
        ));
        for r in &p.repositories {
            let place = format!("    {} '{}': media {}, site {}", r.role, r.repository, r.media, r.site);
            match &r.error {
                Some(e) => ctx.say(format!("{place}: ERROR: {e}")),
                None => ctx.say(format!(
                    "{place}, off-site {}, newest snapshot {} ({} ago){}",
                    yes_no(r.off_site),
                    r.newest_snapshot.map_or_else(|| "none".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()),
                    r.newest_age_seconds.map_or_else(|| "-".to_owned(), human),
                    if r.holds_newest == Some(false) { ": BEHIND, lacks the newest snapshot" } else { "" }
                )),
            }
        }
        for a in &s.alerts {
            ctx.say(format!("  ALERT: {a}"));
        }
        if let Some(i) = &s.immutability {
            ctx.say(format!("  immutability: {}", i.reason));
        }
        if let Some(pg) = &s.postgres {
            if let Some(g) = &pg.gap {
                ctx.say(format!("  WAL gap: {g} is missing; restores cannot cross it (take a new base backup)"));
            }
            if let Some(st) = &pg.stream {
                ctx.say(format!(
                    "  stream: slot {} {}{}",
                    st.slot,
                    if st.active { "connected" } else { "NOT CONNECTED" },
                    st.sync_state.as_deref().map(|s| format!(", {s}")).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}
