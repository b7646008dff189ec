// The order of the records in each epoch: the same seed gives the same order on every machine.
//
// Generator: xoshiro128** 1.1 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c),
// 32-bit state words s0..s3:
//     result = rotl(s1 · 5, 7) · 9
//     t = s1 << 9;  s2 ^= s0;  s3 ^= s1;  s1 ^= s2;  s0 ^= s3;  s2 ^= t;  s3 = rotl(s3, 11)
// (all arithmetic mod 2^32). Seeding: SplitMix64 (Vigna, https://prng.di.unimi.it/splitmix64.c)
// from the 64-bit seed, two outputs x, y: s0 = low32(x), s1 = high32(x), s2 = low32(y),
// s3 = high32(y).
//
// Epoch e uses the seed (seed + e) mod 2^64, and shuffles the file order 0..n−1 afresh: no
// state is carried from one epoch to the next, so a resumed run finds the same orders.
//
// Shuffle: Fisher–Yates (Durstenfeld): for i = n−1 down to 1, j = uniform(0..i), swap a[i], a[j].
// uniform(0..k−1) is unbiased by rejection: threshold = (2^32 − k) mod k; draw r until
// r ≥ threshold; return r mod k.
//
// Only integer operations with exact results are used, so any implementation (C++, Python…)
// following these lines reproduces the orders bit for bit.

const mask64 = (1n << 64n) - 1n

/** One SplitMix64 step: the output for `state`, and the next state. */
export function splitMix64(state: bigint): { value: bigint; next: bigint } {
  const next = (state + 0x9e3779b97f4a7c15n) & mask64
  let z = next
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask64
  return { value: z ^ (z >> 31n), next }
}

export class Xoshiro128StarStar {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  /** From the four 32-bit state words (not all zero). */
  constructor(state: readonly [number, number, number, number]) {
    ;[this.s0, this.s1, this.s2, this.s3] = state.map((word) => word >>> 0) as [number, number, number, number]
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new RangeError('xoshiro128** needs a state that is not all zero')
  }

  /** Seeded from a 64-bit seed through SplitMix64 (see the top of this file). */
  static fromSeed(seed: bigint | number): Xoshiro128StarStar {
    const first = splitMix64(BigInt(seed) & mask64)
    const second = splitMix64(first.next)
    const words = [first.value, first.value >> 32n, second.value, second.value >> 32n].map((w) => Number(w & 0xffffffffn))
    // SplitMix64 never gives two zero outputs in a row; kept for safety.
    if (!words.some((w) => w !== 0)) words[0] = 1
    return new Xoshiro128StarStar(words as [number, number, number, number])
  }

  /** The next 32-bit output, as an unsigned number. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** An unbiased integer in [0, bound), 1 ≤ bound ≤ 2^32. */
  below(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) throw new RangeError(`below(${bound}): the bound must be a whole number in 1..2^32`)
    const threshold = (2 ** 32 - bound) % bound
    for (;;) {
      const r = this.nextUint32()
      if (r >= threshold) return r % bound
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** A uniformly random permutation of 0..count−1 for this seed (Fisher–Yates). */
export function shuffledOrder(count: number, seed: bigint | number): Uint32Array {
  if (!Number.isSafeInteger(count) || count < 0 || count > 2 ** 32) throw new RangeError(`shuffledOrder: ${count} is not a record count`)
  const order = new Uint32Array(count)
  for (let i = 0; i < count; i++) order[i] = i
  const rng = Xoshiro128StarStar.fromSeed(seed)
  for (let i = count - 1; i > 0; i--) {
    const j = rng.below(i + 1)
    const t = order[i]!
    order[i] = order[j]!
    order[j] = t
  }
  return order
}

/**
 * The record order of epoch `epoch` (0-based): shuffled with the seed seed + epoch, or the file
 * order with `--no-shuffle` (shuffle: false).
 */
export function epochOrder(count: number, config: { seed: number; shuffle: boolean }, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epochOrder: ${epoch} is not an epoch`)
  if (!config.shuffle) return Uint32Array.from({ length: count }, (_, i) => i)
  return shuffledOrder(count, (BigInt(config.seed) + BigInt(epoch)) & mask64)
}
