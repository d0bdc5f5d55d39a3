//! The `guard` binary: everything is in the library, so that items stay crate-private there and
//! dead code shows.

fn main() -> std::process::ExitCode {
    guard::main()
}
