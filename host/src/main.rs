fn main() -> std::process::ExitCode {
    webcare::cli::main()
}
