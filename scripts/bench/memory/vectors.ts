/**
 * The memory benchmark's vectors, shared by the bench Worker (worker.ts) and the harness (run.mjs,
 * through Node's type stripping): both must build identical vectors from a seed.
 */
export const DIMS = 384;

/** mulberry32 → a unit vector of DIMS dimensions. */
export function vectorFor(seed: number): Float32Array {
  let a = seed >>> 0;
  const v = new Float32Array(DIMS);
  let s = 0;
  for (let i = 0; i < DIMS; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const x = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
    v[i] = x;
    s += x * x;
  }
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < DIMS; i++) v[i] = (v[i] as number) * inv;
  return v;
}
