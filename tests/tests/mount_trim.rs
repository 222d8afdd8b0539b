//! A mount whose change stream fell behind the shard's trim point (the mount process was
//! stopped while the log moved on and was trimmed) notices, drops its own cached statuses and
//! follows the shard again from where it stands: changes made afterwards reach it long before
//! its 30 s cache timeouts. The shard runs with a 1 MiB log bound and 1 MiB segments (through
//! the environment the cluster's processes inherit: this file holds one test so nothing else
//! shares it).

use std::time::{Duration, Instant};

use arbor_tests::mount::Mount;
use arbor_tests::{Config, TestCluster, secs, within};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_behind_the_trim_point_follows_the_shard_again() {
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe {
        std::env::set_var("ARBOR_METASTORE_CHANGES_RETAIN_MB", "1");
        std::env::set_var("ARBOR_METASTORE_LOG_RETAIN_MB", "1");
        std::env::set_var("ARBOR_METASTORE_SEGMENT_MB", "1");
    }
    within(secs(300), async {
        let cluster = TestCluster::start(Config {
            shards: 1,
            namenodes: 1,
            ..Config::default()
        })
        .await;
        let m = Mount::start(&cluster, "");
        let client = cluster.client().await;
        client.mkdir("/t", 0o755, false).await.expect("mkdir");
        client
            .create("/t/seen", 0o644, false)
            .await
            .expect("create");
        assert!(m.at("t/seen").exists());
        assert!(
            !m.at("t/later").exists(),
            "the mount now caches the absence"
        );

        // Stopped, the mount reads nothing of its stream while ~6 MiB of log goes by and
        // all but the last 1 MiB of it is trimmed.
        let pid = Pid::from_raw(m.pid().expect("mount pid") as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        let big = vec![b'z'; 60 << 10];
        for i in 0..100 {
            let p = format!("/t/f{i}");
            client.create(&p, 0o644, false).await.expect("create");
            client
                .set_xattr(&p, "user.blob", &big)
                .await
                .expect("setxattr");
        }
        let mut raw = cluster.raw_metastore(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = raw
                .status(arbor_proto::metastore::StatusRequest {})
                .await
                .expect("status")
                .into_inner();
            if st.first_retained_seq > 10 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the log was never trimmed: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        kill(pid, Signal::SIGCONT).expect("SIGCONT");

        // Made after the trim: the mount, following again, drops its cached absence.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client
            .create("/t/later", 0o644, false)
            .await
            .expect("create");
        let start = Instant::now();
        while !m.at("t/later").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the mount never saw /t/later after its stream was trimmed:\n{}",
                m.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            m.log_text().contains("trimmed"),
            "the mount says its stream was trimmed:\n{}",
            m.log_text()
        );
    })
    .await;
}
