-- The small Ignition seed for tests: seed.sql at scale 0.02 (20,000
-- activity events, 100 users), which loads in about a second.
-- psql only (it includes seed.sql with \ir); with another client, run
-- "SET ignition.seed_scale = '0.02'" and then seed.sql in the same session.
SET ignition.seed_scale = '0.02';
\ir seed.sql
