-- The rows of data(scale) in crates/demo/src/medicapp.rs, one table per
-- step so that a step can be loaded by several sessions in parallel:
--   psql -v p=<scale*1000> -v step=<table> -v lo=<first> -v hi=<last> -f medicapp-data.sql
-- (lo..hi is a range of that table's generate_series; run.sh splits it).
-- Same expressions as medicapp.rs; text_expr(seed, n) is bench_words(seed, n).
\set cases '(3 * :p)'
\if :{?step}
\else
\echo 'step is required' \quit
\endif
SELECT :'step' = 'patients' AS is_patients, :'step' = 'procedure_cases' AS is_cases, :'step' = 'documents' AS is_documents,
       :'step' = 'prescriptions' AS is_prescriptions, :'step' = 'appointments' AS is_appointments, :'step' = 'audit_log' AS is_audit \gset
\if :is_patients
INSERT INTO patients SELECT g, lpad((1000000000000 + g::bigint * 7919 % 999999999999)::text, 13, '0'),
    initcap(bench_words(g::text || 'l', 1)), initcap(bench_words(g::text || 'f', 1)), date '2008-01-01' + (g * 37 % 6000),
    (g % 200 + 1) || ' rue ' || initcap(bench_words(g::text || 's', 2)) || ', ' || (75000 + g % 95 * 100) || ' ' || initcap(bench_words(g::text || 'c', 1)),
    CASE WHEN g % 3 = 0 THEN initcap(bench_words(g::text || 'g', 1)) END, bench_words(g::text || 'n', 12), now() - (g % 900) * interval '1 day'
FROM generate_series(:lo, :hi) g;
\elif :is_cases
INSERT INTO procedure_cases SELECT g, 1 + g % :p, 'Dr ' || initcap(bench_words((g % 40)::text, 1)), 'CCAM-' || lpad((g * 13 % 9999)::text, 4, '0'),
    now() - (g % 700) * interval '1 day' + (g % 24) * interval '1 hour',
    (ARRAY['scheduled','done','cancelled','follow-up'])[1 + g % 4], bench_words(g::text || 'r', 40), now()
FROM generate_series(:lo, :hi) g;
\elif :is_documents
INSERT INTO documents SELECT g, 1 + g % :cases, (ARRAY['consentement','ordonnance','compte-rendu'])[1 + g % 3],
    'legal_documents_signed/' || (g % 997) || '/case-' || g || '-signed.pdf', md5(g::text) || md5((g * 7)::text), now() - (g % 500) * interval '1 hour'
FROM generate_series(:lo, :hi) g;
\elif :is_prescriptions
INSERT INTO prescriptions SELECT g, 1 + g % :cases, initcap(bench_words(g::text || 'd', 1)), (1 + g % 4) || ' x ' || (g % 3 + 1) * 250 || ' mg', bench_words(g::text || 'i', 10)
FROM generate_series(:lo, :hi) g;
\elif :is_appointments
INSERT INTO appointments (patient_id, at, reason) SELECT 1 + g % :p, now() + (g % 90) * interval '1 day', bench_words(g::text || 'a', 5)
FROM generate_series(:lo, :hi) g;
\elif :is_audit
INSERT INTO audit_log (at, actor, action, detail) SELECT now() - (g % 1000) * interval '1 minute', 'user' || (g % 50),
    (ARRAY['read','update','sign','export','login'])[1 + g % 5], jsonb_build_object('case', g % :cases, 'ip', '10.0.' || (g % 250) || '.' || (g % 199))
FROM generate_series(:lo, :hi) g;
\else
\echo 'unknown step' :step
\quit
\endif
