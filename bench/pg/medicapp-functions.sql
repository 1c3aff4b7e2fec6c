-- Helpers of bench/pg/medicapp-data.sql, loaded after the demo's schema (gen-dataset medicapp-schema).
-- text_expr(seed, n) of medicapp.rs as a function: n words drawn from the
-- vocabulary by md5-derived indexes (varied, deterministic).
CREATE FUNCTION bench_words(seed text, n int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg((ARRAY['patient','intervention','chirurgie','pediatrique','consentement','eclaire','anesthesie','risque','parent','tuteur',
    'signature','hopital','service','posologie','matin','soir','jours','compte','rendu','operatoire','suites','simples','controle','semaines',
    'douleur','fievre','antibiotique','pansement','cicatrice','bilan','radio','echographie','allergie','poids','taille','tension','sortie','rappel'])
    [1 + (('x' || substr(md5(seed || '-' || w), 1, 8))::bit(32)::int & 2147483647) % 38], ' ')
  FROM generate_series(1, n) w
$$;
