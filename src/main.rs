//! datpatch's binary: everything lives in the library; this only hands over the command line.

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    datpatch::cli::main()
}
