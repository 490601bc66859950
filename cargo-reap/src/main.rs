fn main() {
    std::process::exit(cargo_reap::main_entry(std::env::args_os().collect()));
}
