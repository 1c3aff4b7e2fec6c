//! `plan render` and `plan lint` on a real repository: the document is
//! written from the plan and from what the repository holds, with no
//! placeholder, in Markdown, HTML and PDF (read back with `pdftotext`);
//! lint names each finding with its code and exits by severity.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

/// A plan whose facts break several promises: one repository at one site
/// (no off-site copy), immutability asked of a local directory, a 20-year
/// legal retention with no retention at all, a component never backed up
/// and without objectives, a contact reviewed long ago, a monthly test
/// never run.
fn plan(t: &TestDir, docs: &Path) -> std::path::PathBuf {
    let plan = t.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            "[plan]\nname = \"Clinique test\"\n\n[repositories.primary]\nurl = \"{repo}\"\nsite = \"paris-dc1\"\n\n\
             [components.documents]\ntype = \"files\"\npaths = [\"{docs}\"]\n\n[components.documents.objectives]\nrpo = \"1h\"\nrto = \"4h\"\nimmutable = true\n\n\
             [components.logs]\ntype = \"files\"\npaths = [\"{docs}\"]\n\n\
             [contacts.lead]\nname = \"Dr. Alice Durand\"\nrole = \"Responsable PRA/PCA\"\nphone = \"+33 1 00 00 00 09\"\nreviewed = 2025-01-01\n\n\
             [legal.records]\ndata = \"Documents signés\"\nretain = \"20y\"\ncomponents = [\"documents\"]\n\n\
             [tests.monthly]\ncomponents = [\"documents\"]\nevery = \"1mo\"\nresponsible = \"lead\"\n",
            repo = t.join("repo").display(),
            docs = docs.display()
        ),
    )
    .expect("plan");
    plan
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn lint_names_each_broken_promise_and_exits_by_severity() {
    let t = TestDir::new("plan-lint");
    let docs = t.join("docs");
    fs::create_dir_all(&docs).expect("docs");
    fs::write(docs.join("consent-1.pdf"), b"%PDF-1.4 signed").expect("doc");
    let plan = plan(&t, &docs);
    let r = Reprise::new(t.path());
    r.init();
    r.backup(&["--plan".as_ref(), plan.as_os_str(), "documents".as_ref()]);
    let out = r.run(&["--plan".as_ref(), plan.as_os_str(), "--json".as_ref(), "plan".as_ref(), "lint".as_ref()]).expect_code(13);
    let report = out.json();
    let found: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["code"].as_str().unwrap_or_default().to_owned(), f["subject"].as_str().unwrap_or_default().to_owned(), f["severity"].as_str().unwrap_or_default().to_owned()))
        .collect();
    for (code, subject, severity) in [
        ("no-off-site-copy", "documents", "error"),
        ("immutability-not-in-force", "documents", "error"),
        ("retention-below-legal", "documents", "error"),
        ("no-backup", "logs", "error"),
        ("drill-overdue", "monthly", "error"),
        ("no-objectives", "logs", "warning"),
        ("contact-not-reviewed", "lead", "warning"),
        ("rto-not-measured", "documents", "warning"),
        ("review-overdue", "plan", "warning"),
    ] {
        assert!(found.contains(&(code.to_owned(), subject.to_owned(), severity.to_owned())), "{code} on {subject} ({severity}) missing: {found:?}");
    }
    assert!(report["findings"].as_array().expect("findings").iter().all(|f| f["fix"].as_str().is_some_and(|s| !s.is_empty())), "every finding has its fix");
    assert_eq!(report["errors"], 6, "no-off-site-copy twice (documents and logs): {report}");

    // Text: one line per finding and its fix, one error line, exit 13.
    let text = r.run(&["--plan".as_ref(), plan.as_os_str(), "plan".as_ref(), "lint".as_ref()]).expect_code(13);
    assert!(text.stdout.contains("error[no-off-site-copy] documents:") && text.stdout.contains("    fix: declare a repository at another site"), "{}", text.stdout);
    text.assert_one_line_error();

    // Only warnings: exit 12.
    let quiet = t.join("warnings.toml");
    fs::write(&quiet, format!("[repositories.primary]\nurl = \"{}\"\nsite = \"paris-dc1\"\n", t.join("repo").display())).expect("plan");
    let out = r.run(&["--plan".as_ref(), quiet.as_os_str(), "--json".as_ref(), "plan".as_ref(), "lint".as_ref()]).expect_code(12);
    let codes: Vec<Value> = out.json()["findings"].as_array().expect("findings").iter().map(|f| f["code"].clone()).collect();
    assert_eq!(codes, vec![Value::from("no-contacts"), Value::from("review-overdue")]);
}

#[test]
fn render_writes_the_plan_with_measured_facts_and_no_placeholder_in_every_format() {
    let t = TestDir::new("plan-render");
    let docs = t.join("docs");
    fs::create_dir_all(&docs).expect("docs");
    fs::write(docs.join("consent-1.pdf"), b"%PDF-1.4 signed").expect("doc");
    let plan = plan(&t, &docs);
    let r = Reprise::new(t.path());
    r.init();
    let b = r.backup(&["--plan".as_ref(), plan.as_os_str(), "documents".as_ref()]);
    let p = |args: &[&str]| {
        let mut all = vec!["--plan".to_owned(), plan.display().to_string(), "plan".to_owned(), "render".to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        r.run(&all)
    };

    let md = t.join("pra.md");
    p(&["-o", md.to_str().expect("utf8")]).ok();
    let text = fs::read_to_string(&md).expect("md");
    for placeholder in ["À REMPLIR", "[DATE", "[NOM", "[EMAIL"] {
        assert!(!text.contains(placeholder), "{placeholder}:\n{text}");
    }
    // Measured: the snapshot the backup made, its time, the posture.
    let time = b["header"]["time"].as_str().or_else(|| b["time"].as_str()).map(|s| s[..16].replace('T', " ")).expect("backup time");
    assert!(text.contains(&format!("| documents | 1 | {time} UTC")), "the restorable points of documents ({time}):\n{text}");
    assert!(text.contains("| logs | 0 | aucun | aucun | aucune |"), "{text}");
    assert!(text.contains("demandée, PAS en vigueur"), "{text}");
    assert!(text.contains("aucun exercice enregistré"), "{text}");
    assert!(text.contains("Dr. Alice Durand") && text.contains("+33 1 00 00 00 09"), "{text}");
    assert!(text.contains(&format!("reprise --plan {} restore documents --to /var/tmp/reprise-restore/documents", plan.display())), "{text}");
    assert!(text.contains("\\[no-off-site-copy\\]"), "the findings are in the document:\n{text}");

    let html = t.join("pra.html");
    p(&["-o", html.to_str().expect("utf8")]).ok();
    let page = fs::read_to_string(&html).expect("html");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<html lang=\"fr\">") && page.contains("Dr. Alice Durand"));
    // Markdown escapes `_`; the HTML page shows text as written, and its
    // signature lines are drawn, not typed.
    assert!(!page.contains("___") && !page.contains("REMPLIR"), "{page}");

    let en = t.join("drp.md");
    p(&["-o", en.to_str().expect("utf8"), "--lang", "en"]).ok();
    let english = fs::read_to_string(&en).expect("md");
    assert!(english.contains("no drill recorded") && english.contains("Disaster Recovery and Business Continuity Plan"), "{english}");

    let pdf = t.join("pra.pdf");
    p(&["-o", pdf.to_str().expect("utf8")]).ok();
    assert!(fs::read(&pdf).expect("pdf").starts_with(b"%PDF-"));
    let read = std::process::Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output();
    match read {
        Ok(o) => {
            assert!(o.status.success());
            let pdf_text = flat(&String::from_utf8_lossy(&o.stdout));
            for fact in ["Clinique test", "Dr. Alice Durand", "aucun exercice enregistré", "no-off-site-copy", "Documents signés", "demandée, PAS en vigueur"] {
                assert!(pdf_text.contains(&flat(fact)), "{fact:?} not in the PDF:\n{pdf_text}");
            }
            assert!(!pdf_text.contains("REMPLIR"));
        }
        Err(e) => {
            assert!(!require_all(), "pdftotext is required (poppler-utils): {e}");
            skip("pdftotext not installed");
        }
    }
}

#[test]
fn render_bad_input_gets_one_line_a_documented_code_and_writes_nothing() {
    let t = TestDir::new("plan-render-bad");
    let docs = t.join("docs");
    fs::create_dir_all(&docs).expect("docs");
    let plan = plan(&t, &docs);
    let r = Reprise::new(t.path());
    let out = t.join("x.docx");
    let o = r.run(&["--plan".as_ref(), plan.as_os_str(), "plan".as_ref(), "render".as_ref(), "-o".as_ref(), out.as_os_str(), "--format".as_ref(), "docx".as_ref()]).expect_code(2);
    o.assert_one_line_error();
    assert!(o.stderr.contains("use md, html or pdf"), "{}", o.stderr);
    let o = r.run(&["--plan".as_ref(), plan.as_os_str(), "plan".as_ref(), "render".as_ref(), "-o".as_ref(), out.as_os_str(), "--lang".as_ref(), "de".as_ref()]).expect_code(2);
    assert!(o.stderr.contains("use fr or en"), "{}", o.stderr);
    let missing = t.join("no/such/dir/pra.md");
    let o = r.run(&["--plan".as_ref(), plan.as_os_str(), "plan".as_ref(), "render".as_ref(), "-o".as_ref(), missing.as_os_str()]).expect_code(3);
    o.assert_one_line_error();
    let o = r.run(&["--plan".as_ref(), t.join("nope.toml").as_os_str(), "plan".as_ref(), "lint".as_ref()]).expect_code(3);
    o.assert_one_line_error();
    assert!(!out.exists() && !missing.exists(), "nothing written");
}
