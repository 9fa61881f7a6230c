//! `retcd-bench`: etcd's benchmark workloads over the etcd v3 gRPC API (against etcd or
//! retcd), and `compare`, which runs one suite against real etcd and retcd side by side.
//! See the library (`retcd_bench`) for the parts; this file only parses and dispatches.
//!
//! Exit status: 0 when the workload ran (request errors are counted in the report), 1 on a
//! setup failure, 2 on bad flags, 3 when the server answers `Unimplemented`.

use std::process::ExitCode;

use clap::Parser;
use retcd_bench::BenchError;
use retcd_bench::args::{Cli, Command};

/// mimalloc, as the server: decoding responses (watch events above all) allocates many small
/// buffers on every worker thread.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("retcd-bench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match &cli.command {
            Command::Compare(a) => retcd_bench::compare::run(&cli.global, a).await,
            cmd => {
                let report = retcd_bench::run_workload(&cli.global, cmd).await?;
                if cli.global.json {
                    retcd_bench::print_out(&format!("{}\n", report.to_json()));
                } else {
                    retcd_bench::print_out(&report.render());
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.global.json {
                retcd_bench::print_out(&format!("{}\n", serde_json::json!({ "error": e.to_string() })));
            }
            eprintln!("retcd-bench: {e}");
            match e {
                BenchError::Unimplemented(_) => ExitCode::from(3),
                _ => ExitCode::from(1),
            }
        }
    }
}
