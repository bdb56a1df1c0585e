import { describe, expect, it } from 'vitest';
import { KernelError } from '../kernel/errors.ts';
import { compileTool, instrument, stripTypes } from './compile.ts';

const einval = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    return (e as KernelError).code === 'EINVAL' ? (e as KernelError).message : `not EINVAL: ${(e as KernelError).code}`;
  }
  return 'did not throw';
};

describe('the tool compiler', () => {
  it('strips types and keeps line numbers', () => {
    const js = stripTypes('interface A { x: number }\nexport default async function (a: A): Promise<number> {\n  return a.x as number;\n}\n');
    expect(js.split('\n')[2]).toMatch(/return a\.x\s*;/);
    expect(js).not.toMatch(/interface|Promise<number>/);
  });

  it('puts the budget hook into every loop body and function body, without adding lines', () => {
    const src = 'export default async function (a) {\n  for (const x of a) if (x) continue;\n  while (a.length) a.pop();\n  do { a.push(1) } while (false);\n  const f = (y) => y + 1;\n  class C { m() { return 1 } }\n  return f(1);\n}';
    const out = instrument(src);
    expect(out.split('\n')).toHaveLength(src.split('\n').length);
    expect(out.match(/__aos_tick\(\)/g)).toHaveLength(6);
    expect(out).toContain('for (const x of a) {__aos_tick();if (x) continue;}');
    expect(out).toContain('const f = (y) => (__aos_tick(),y + 1)');
    expect(out).toContain('m() {__aos_tick(); return 1 }');
  });

  it('refuses imports, extra exports, several or no defaults, import.meta and reserved names', () => {
    expect(einval(() => instrument("import x from 'y'; export default x"))).toMatch(/cannot import/);
    expect(einval(() => instrument('export const a = 1; export default a'))).toMatch(/only its default/);
    expect(einval(() => instrument('const x = 2; export default 1; export { x as default }'))).toMatch(/only its default|Duplicate export/);
    expect(einval(() => instrument('const a = 1;'))).toMatch(/exactly one `export default`/);
    expect(einval(() => instrument('export default () => import.meta.url'))).toMatch(/import\.meta/);
    expect(einval(() => instrument('export default () => { let __aos_x = 1; return __aos_x }'))).toMatch(/reserved/);
    expect(einval(() => stripTypes('export default (a: number => 1'))).toMatch(/does not compile/);
  });

  it('addresses code by content: the same source hashes the same', async () => {
    const a = await compileTool('export default async () => 1');
    const b = await compileTool('export default async () => 1');
    const c = await compileTool('export default async () => 2');
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
    await expect(compileTool('x'.repeat(70_000))).rejects.toThrow(/limit/);
  });
});
