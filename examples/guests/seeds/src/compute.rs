//! CPU-bound work, shared word for word by the `seeds` module and the native
//! floor of the benchmark (`host/benches/peer.rs` includes this file).

/// `sum(range(n))`, one addition at a time.
pub(crate) fn sum_range(n: u64) -> u64 {
    (0..n).fold(0u64, |sum, i| sum.wrapping_add(std::hint::black_box(i)))
}

/// Counts the primes up to `n` with the sieve of Eratosthenes.
pub(crate) fn sieve(n: u64) -> u64 {
    let n = n as usize;
    let mut composite = vec![false; n + 1];
    let mut count = 0;
    let mut i = 2;
    while i <= n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j <= n {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    count
}
