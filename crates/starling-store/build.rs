//! `sqlx::migrate!` embeds the migration files at compile time; without
//! this, cargo does not notice a new file there and keeps the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
