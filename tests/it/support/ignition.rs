//! The Ignition demo database (`examples/ignition`): schema and seed, loaded with a plain client.

use super::cluster::Db;
use super::data::read;

/// The seed scale of `seed-small.sql` (20,000 activity events, 100 users; about a second to load).
pub fn small_seed() -> f64 {
    let small = read("examples/ignition/seed-small.sql");
    let scale = small
        .lines()
        .find_map(|l| l.trim().strip_prefix("SET ignition.seed_scale = "))
        .expect("seed-small.sql sets ignition.seed_scale");
    let scale = scale.trim_end_matches(';').trim_matches('\'');
    scale.parse().unwrap_or_else(|_| panic!("seed-small.sql: seed scale {scale:?}"))
}

/// Loads `schema.sql`, then `seed.sql` at `scale` (1 = one million activity events), in one session: what
/// `seed-small.sql` does with psql's `\ir` for its scale.
pub fn load_ignition(db: &Db, scale: f64) {
    let schema = read("examples/ignition/schema.sql");
    let seed = read("examples/ignition/seed.sql");
    for (name, text) in [("schema.sql", &schema), ("seed.sql", &seed)] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with('\\')),
            "{name} has psql meta-commands: the tests load it with a plain client"
        );
    }
    let mut c = db.client();
    c.batch_execute(&schema).unwrap();
    c.batch_execute(&format!("SET ignition.seed_scale = '{scale}'")).unwrap();
    c.batch_execute(&seed).unwrap();
}
