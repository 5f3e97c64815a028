//! Pages the allocator holds free, handed back to the kernel between the pipeline and
//! detection.
//!
//! glibc's allocator gives threads arenas of their own (up to eight per core) and keeps
//! the pages freed in each for later allocations there: the flow tables the shard threads
//! free at the end of the input stay resident while detection, on other threads, asks
//! for new pages. On `gen_capture --pps 20000` traffic fed on stdin, 32 M packets with
//! `max_pending_flows = 65536` peaked at 207-233 MiB of RSS against a heap of at most
//! 151 MB (heaptrack); handing the free pages back once the pipeline is done brought
//! that to 178-190 MiB, and the same 32 M packets with a cap of 2^20 (then the
//! default) from 288 to 267 MiB; with that cap and 10 s timeouts (`benches/e2e.sh`'s
//! steady state, read from a file), from 199-208 to 178-183 MiB at 16 M packets (at 8 M
//! the peak comes elsewhere: 142-146 against 143-148); partitioned by hour (detection
//! reads the tables back), from 256 to 230 MiB at 16 M. It takes 5-12 ms, while the
//! tables' files end, and no measurable wall time on the benchmark shapes.

/// Hands the pages the allocator holds free back to the kernel: glibc's `malloc_trim`,
/// which walks every arena (glibc 2.8 and later). Elsewhere, nothing.
pub(crate) fn return_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a byte count and no pointer, and only gives the kernel
    // the pages inside free chunks, never a block in use; it takes each arena's lock,
    // so any thread may call it while others allocate and free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Set in the process the test runs itself in.
    const RUN_ALONE_VAR: &str = "WORMSIGN_TEST_MEMORY_ALONE";

    /// Resident bytes of this process (`VmRSS` in `/proc/self/status`).
    fn resident() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// 96 MiB of small blocks freed on a thread of their own, below one block still
    /// held, stay resident until the pages are handed back.
    #[test]
    fn pages_freed_on_another_thread_are_handed_back() {
        // In a process of its own: another test's allocations, a trim of its own, or a
        // thread taking over the arena would move the figures.
        if std::env::var_os(RUN_ALONE_VAR).is_none() {
            let name = "memory::tests::pages_freed_on_another_thread_are_handed_back";
            let alone = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads", "1"])
                .env(RUN_ALONE_VAR, "1")
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&alone.stdout);
            // A renamed test would match nothing, and the child would pass running none.
            assert!(
                alone.status.success() && said.contains("1 passed"),
                "in a process of its own: {said}"
            );
            return;
        }
        const BLOCKS: usize = 24 * 1024;
        let held = std::thread::spawn(|| {
            let mut blocks: Vec<Box<[u8; 4096]>> =
                (0..BLOCKS).map(|_| Box::new([1; 4096])).collect();
            // Kept from being optimised away: the test is about their pages.
            std::hint::black_box(&mut blocks);
            let last = blocks.pop();
            drop(blocks);
            last
        })
        .join()
        .unwrap();
        let before = resident();
        return_free_pages();
        let after = resident();
        assert!(
            before.saturating_sub(after) >= BLOCKS * 4096 / 2,
            "resident {before} before, {after} after"
        );
        drop(held);
    }
}
