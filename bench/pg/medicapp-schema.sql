-- The MedicApp-like schema of crates/demo/src/medicapp.rs (SCHEMA), copied.
CREATE TABLE patients (
    id bigint PRIMARY KEY,
    ins_number text NOT NULL,
    last_name text NOT NULL,
    first_name text NOT NULL,
    birth_date date NOT NULL,
    address text NOT NULL,
    guardian text,
    notes text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE procedure_cases (
    id bigint PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients(id),
    surgeon text NOT NULL,
    procedure_code text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    status text NOT NULL,
    report text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON procedure_cases (patient_id);
CREATE TABLE documents (
    id bigint PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES procedure_cases(id) ON DELETE CASCADE,
    kind text NOT NULL,
    storage_path text NOT NULL,
    sha256 text NOT NULL,
    signed_at timestamptz
);
CREATE INDEX ON documents (case_id);
CREATE TABLE prescriptions (
    id bigint PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES procedure_cases(id) ON DELETE CASCADE,
    drug text NOT NULL,
    dosage text NOT NULL,
    instructions text
);
CREATE INDEX ON prescriptions (case_id);
CREATE TABLE appointments (
    id bigserial PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients(id),
    at timestamptz NOT NULL,
    reason text NOT NULL
);
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb
);

-- text_expr(seed, n) of medicapp.rs as a function: n words drawn from the
-- vocabulary by md5-derived indexes (varied, deterministic).
CREATE FUNCTION bench_words(seed text, n int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg((ARRAY['patient','intervention','chirurgie','pediatrique','consentement','eclaire','anesthesie','risque','parent','tuteur',
    'signature','hopital','service','posologie','matin','soir','jours','compte','rendu','operatoire','suites','simples','controle','semaines',
    'douleur','fievre','antibiotique','pansement','cicatrice','bilan','radio','echographie','allergie','poids','taille','tension','sortie','rappel'])
    [1 + (('x' || substr(md5(seed || '-' || w), 1, 8))::bit(32)::int & 2147483647) % 38], ' ')
  FROM generate_series(1, n) w
$$;
