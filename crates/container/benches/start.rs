//! `cargo bench -p container`: skiff's container start next to crun's.
//! Needs root, `busybox-static` and `crun`. `BENCH_RUNS` sets the runs
//! (default 200).

fn main() {
    if let Some(code) = container::dispatch() {
        std::process::exit(code);
    }
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let work = std::env::temp_dir().join(format!("skiff-bench-container-{}", std::process::id()));
    let result = container::bench::private_cgroup_view().and_then(|()| {
        container::bench::run(&container::bench::BenchOptions {
            runs,
            work_dir: work.clone(),
            exe: None,
            crun: Some("/usr/bin/crun".into()),
        })
    });
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}
