//! `airlock`: the controller's command line (server and client).

fn main() {
    eprintln!("airlock: the command line arrives with the controller issue");
    std::process::exit(2);
}
