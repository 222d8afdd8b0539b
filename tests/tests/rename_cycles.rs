//! Crossing renames: rename(a, b/a) and rename(b, a/b) at the same time, from two namenodes.
//! Each would be legal alone; together they would make a cycle cut off from the root. The
//! destination's ancestors are validated (read-locked under two-phase commit), so at most one of
//! the two commits: never a cycle, everything stays reachable from /.

use std::collections::BTreeSet;
use std::sync::Arc;

use arbor_client::Client;
use arbor_proto::namenode::ErrorCode;
use arbor_tests::namespace::{join, ok, walk};
use arbor_tests::{Config, TestCluster, secs, within};
use tokio::sync::Barrier;

const ROUNDS: usize = 40;

/// The two directories of one round and the two crossing renames.
struct Round {
    /// The round's own directory: the renames happen below it.
    top: String,
    /// Directories to create, in order.
    mkdirs: Vec<String>,
    a: String,
    b: String,
    /// rename(a, a_into_b) and rename(b, b_into_a).
    a_into_b: String,
    b_into_a: String,
}

fn round(r: usize) -> Round {
    let top = format!("/round{r:02}");
    if r.is_multiple_of(2) {
        // Siblings: /top/a and /top/b.
        let (a, b) = (join(&top, "a"), join(&top, "b"));
        Round {
            mkdirs: vec![top.clone(), a.clone(), b.clone()],
            top,
            a_into_b: join(&b, "a"),
            b_into_a: join(&a, "b"),
            a,
            b,
        }
    } else {
        // Cousins under different parents: /top/x/a and /top/y/b.
        let (x, y) = (join(&top, "x"), join(&top, "y"));
        let (a, b) = (join(&x, "a"), join(&y, "b"));
        Round {
            mkdirs: vec![top.clone(), x, y, a.clone(), b.clone()],
            top,
            a_into_b: join(&b, "a"),
            b_into_a: join(&a, "b"),
            a,
            b,
        }
    }
}

/// A crossing rename may lose: its destination's parent moved away (NOT_FOUND), it would now
/// move a directory under itself (SUBDIR_OF_ITSELF), or it kept conflicting (BUSY).
fn lost(result: &Result<(), arbor_client::Error>, what: &str) -> bool {
    match result {
        Ok(()) => false,
        Err(e)
            if matches!(
                e.code,
                ErrorCode::NotFound | ErrorCode::SubdirOfItself | ErrorCode::Busy
            ) =>
        {
            true
        }
        Err(e) => panic!("{what}: unexpected {:?}: {}", e.code, e.message),
    }
}

async fn race(
    c0: &Client,
    c1: &Client,
    from: &str,
    to: &str,
    from2: &str,
    to2: &str,
) -> (bool, bool) {
    let barrier = Arc::new(Barrier::new(2));
    let (b0, b1) = (barrier.clone(), barrier);
    let (r0, r1) = tokio::join!(
        async {
            b0.wait().await;
            c0.rename(from, to).await
        },
        async {
            b1.wait().await;
            c1.rename(from2, to2).await
        }
    );
    (
        !lost(&r0, &format!("rename {from} {to}")),
        !lost(&r1, &format!("rename {from2} {to2}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_directory_renames_never_make_a_cycle() {
    let cluster = TestCluster::start(Config::default()).await;
    within(secs(300), async {
        let client = cluster.client().await;
        let (c0, c1) = (cluster.client_on(0).await, cluster.client_on(1).await);
        let mut outcomes = [0usize; 3];
        for r in 0..ROUNDS {
            let round = round(r);
            for dir in &round.mkdirs {
                ok(client.mkdir(dir, 0o755, false).await, dir);
            }
            let ino_a = ok(client.stat(&round.a).await, &round.a).ino;
            let ino_b = ok(client.stat(&round.b).await, &round.b).ino;
            let before: BTreeSet<String> = walk(&client, &round.top).await.into_keys().collect();

            // Spawned tasks so the two renames really run in parallel.
            let (first, second) = {
                let (c0, c1) = (c0.clone(), c1.clone());
                let (a, ab, b, ba) = (
                    round.a.clone(),
                    round.a_into_b.clone(),
                    round.b.clone(),
                    round.b_into_a.clone(),
                );
                tokio::spawn(async move { race(&c0, &c1, &a, &ab, &b, &ba).await })
                    .await
                    .expect("race task")
            };
            assert!(
                !(first && second),
                "round {r}: both crossing renames succeeded: {} -> {} and {} -> {}",
                round.a,
                round.a_into_b,
                round.b,
                round.b_into_a
            );

            // The round's tree is exactly what the winner (if any) made of it; fsck checks
            // below that every directory is reachable from / through its parents.
            let expected: BTreeSet<String> = before
                .iter()
                .map(|p| {
                    if first && (p == &round.a || p.starts_with(&format!("{}/", round.a))) {
                        p.replacen(&round.a, &round.a_into_b, 1)
                    } else if second && (p == &round.b || p.starts_with(&format!("{}/", round.b))) {
                        p.replacen(&round.b, &round.b_into_a, 1)
                    } else {
                        p.clone()
                    }
                })
                .collect();
            let tree = walk(&client, &round.top).await;
            let after: BTreeSet<String> = tree.keys().cloned().collect();
            assert_eq!(
                after, expected,
                "round {r}: tree after the race (a won: {first}, b won: {second})"
            );
            let reachable: BTreeSet<u64> = tree.values().map(|s| s.ino).collect();
            assert!(
                reachable.contains(&ino_a),
                "round {r}: a is no longer reachable"
            );
            assert!(
                reachable.contains(&ino_b),
                "round {r}: b is no longer reachable"
            );
            outcomes[if first {
                0
            } else if second {
                1
            } else {
                2
            }] += 1;

            if r % 10 == 9 {
                let report = cluster.fsck().await;
                assert!(report.healthy, "round {r}: fsck: {report:?}");
            }
        }
        eprintln!(
            "{ROUNDS} rounds: a moved {} times, b moved {} times, neither {} times",
            outcomes[0], outcomes[1], outcomes[2]
        );
        let report = cluster.fsck().await;
        assert!(report.healthy, "fsck: {report:?}");
    })
    .await;
}
