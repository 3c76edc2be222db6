//! The migrations are embedded in the binary by `sqlx::migrate!`, which cargo
//! does not know reads `migrations/`: rebuild when a migration is added or edited.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
