/// mimalloc instead of glibc's malloc: the ingest path allocates and frees
/// many small strings per message on two threads at once, which is where
/// glibc's allocator spent about 15 % of the time (see docs/service.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    webcare::cli::main()
}
