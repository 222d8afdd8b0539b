//! Encode and rebuild throughput of one stripe of 1 MiB cells, for RS(6,3) and RS(4,2):
//! reed-solomon-erasure (simd-accel, what `codec` uses) against reed-solomon-simd 3.1.
//! Throughput is data in: k cells per stripe. Rebuild loses m data cells (the worst case).
//!
//! cargo bench -p arbor-blockserver --bench codec

use arbor_blockserver::Layout;
use arbor_blockserver::codec::Codec;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use std::hint::black_box;
use std::time::Duration;

const CELL: usize = 1 << 20;

fn stripe(k: usize, m: usize) -> Vec<Vec<u8>> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..k + m)
        .map(|i| {
            (0..CELL)
                .map(|_| {
                    if i >= k {
                        return 0;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for (k, m) in [(6usize, 3usize), (4, 2)] {
        let mut g = c.benchmark_group(format!("RS({k},{m}) 1MiB cells"));
        g.throughput(Throughput::Bytes((k * CELL) as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));

        let codec = Codec::new(Layout::new(k, m, CELL, false).expect("layout")).expect("codec");
        let mut cells = stripe(k, m);
        g.bench_function("erasure-simd encode", |b| {
            b.iter(|| codec.encode(black_box(&mut cells)).expect("encode"))
        });
        codec.encode(&mut cells).expect("encode");
        let encoded = cells.clone();
        let mut present = vec![true; k + m];
        present[..m].fill(false);
        g.bench_function("erasure-simd rebuild m", |b| {
            b.iter(|| {
                codec
                    .reconstruct(black_box(&mut cells), &present)
                    .expect("reconstruct")
            })
        });
        assert_eq!(cells, encoded);

        let mut enc = ReedSolomonEncoder::new(k, m, CELL).expect("encoder");
        g.bench_function("rs-simd encode", |b| {
            b.iter(|| {
                for d in &encoded[..k] {
                    enc.add_original_shard(d).expect("add");
                }
                let r = enc.encode().expect("encode");
                black_box(r.recovery(0).map(|s| s[0]));
            })
        });
        // rs-simd's parity differs from reed-solomon-erasure's: make its own.
        for d in &encoded[..k] {
            enc.add_original_shard(d).expect("add");
        }
        let recovery: Vec<Vec<u8>> = enc
            .encode()
            .expect("encode")
            .recovery_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let mut dec = ReedSolomonDecoder::new(k, m, CELL).expect("decoder");
        g.bench_function("rs-simd rebuild m", |b| {
            b.iter(|| {
                for (i, d) in encoded.iter().enumerate().take(k).skip(m) {
                    dec.add_original_shard(i, d).expect("add");
                }
                for (j, r) in recovery.iter().enumerate() {
                    dec.add_recovery_shard(j, r).expect("add");
                }
                let r = dec.decode().expect("decode");
                let restored = r.restored_original(0).expect("restored");
                assert_eq!(restored[..64], encoded[0][..64]);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
