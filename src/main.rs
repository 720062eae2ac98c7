fn main() -> std::process::ExitCode {
    encore::cli::main()
}
