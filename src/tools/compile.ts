/**
 * The JIT tool compiler: TypeScript source in, a checked and instrumented ES module out. Runs inside
 * the Worker (no build step, no eval):
 *   1. sucrase strips the types (TS → JS). It does not type-check; syntax errors come back with the
 *      compiler's message and position as EINVAL.
 *   2. acorn parses the JS, and the tool's shape is checked: exactly one `export default` (the
 *      function the kernel calls), no import or export of anything else, no dynamic `import()`, and
 *      no identifier in the kernel's reserved `__aos` namespace (so nothing can shadow the budget hook).
 *   3. Every loop body and every function body gets a call to the budget hook `__aos_tick()`, which
 *      the harness defines as a non-writable global. A runaway `while (true) {}` therefore fails with
 *      ETIMEDOUT even where the platform's `cpuMs` limit is not enforced (workerd locally). The
 *      insertions add no line breaks, so line numbers in stacks match the TypeScript source.
 */
import { type Node, parse } from 'acorn';
import { full } from 'acorn-walk';
import { transform } from 'sucrase';
import { KernelError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/policy.ts';

/** Largest tool source accepted (characters). */
export const MAX_TOOL_SOURCE = 64 * 1024;
/** Largest compiled module accepted (characters, after instrumentation). */
export const MAX_TOOL_JS = 256 * 1024;
/** Bump when the compiler's output changes, so cached compilations are not reused across versions. */
export const COMPILER_VERSION = 'sucrase-3.35.1+acorn-8.19.0/1';
export const TICK = '__aos_tick';

export interface CompiledTool {
  /** sha256 of the compiler version and the source: the tool's content address. */
  readonly hash: string;
  readonly js: string;
  readonly source_bytes: number;
  readonly js_bytes: number;
  readonly compile_ms: number;
}

interface Span {
  readonly start: number;
  readonly end: number;
}
interface Insert {
  readonly at: number;
  readonly text: string;
  /** Order among inserts at the same position: closers before openers. */
  readonly order: number;
}

const bad = (message: string, details?: unknown): never => {
  throw new KernelError('EINVAL', message, details);
};

function position(js: string, at: number): string {
  const before = js.slice(0, at);
  const line = before.split('\n').length;
  return `${line}:${at - before.lastIndexOf('\n')}`;
}

/** Strip types. Returns JS with the same line numbers. */
export function stripTypes(source: string): string {
  try {
    return transform(source, { transforms: ['typescript'], disableESTransforms: true, production: true }).code;
  } catch (e) {
    return bad(`the tool does not compile: ${(e as Error).message}`, { compiler: 'sucrase' });
  }
}

/** Check the module's shape and instrument loops and functions with the budget hook. */
export function instrument(js: string): string {
  let ast: Node;
  try {
    ast = parse(js, { ecmaVersion: 'latest', sourceType: 'module' });
  } catch (e) {
    return bad(`the tool does not compile: ${(e as Error).message}`, { compiler: 'acorn' });
  }
  const inserts: Insert[] = [];
  let defaults = 0;
  const body = (node: Span & { type: string }) => {
    if (node.type === 'BlockStatement') inserts.push({ at: node.start + 1, text: `${TICK}();`, order: 1 });
    else {
      inserts.push({ at: node.start, text: `{${TICK}();`, order: 1 });
      inserts.push({ at: node.end, text: '}', order: 0 });
    }
  };
  full(ast, (node) => {
    const n = node as Node & Record<string, unknown>;
    switch (n.type) {
      case 'ImportDeclaration':
        bad(`tools cannot import modules (line ${position(js, n.start)}); everything a tool can reach comes through its sys argument`);
        break;
      case 'ImportExpression':
        bad(`tools cannot use dynamic import() (line ${position(js, n.start)})`);
        break;
      case 'MetaProperty':
        bad(`tools cannot use import.meta or new.target (line ${position(js, n.start)})`);
        break;
      case 'ExportNamedDeclaration':
      case 'ExportAllDeclaration':
        bad(`a tool exports only its default function (line ${position(js, n.start)})`);
        break;
      case 'ExportDefaultDeclaration':
        defaults++;
        break;
      case 'Identifier':
        if (String(n.name).startsWith('__aos')) bad(`the name "${String(n.name)}" is reserved for the kernel (line ${position(js, n.start)})`);
        break;
      case 'WhileStatement':
      case 'DoWhileStatement':
      case 'ForStatement':
      case 'ForInStatement':
      case 'ForOfStatement':
        body(n.body as Span & { type: string });
        break;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression': {
        const b = n.body as Span & { type: string };
        if (b.type === 'BlockStatement') inserts.push({ at: b.start + 1, text: `${TICK}();`, order: 1 });
        else {
          // An expression body: `x => expr` becomes `x => (__aos_tick(), expr)`.
          inserts.push({ at: b.start, text: `(${TICK}(),`, order: 1 });
          inserts.push({ at: b.end, text: ')', order: 0 });
        }
        break;
      }
    }
  });
  if (defaults !== 1) bad('a tool must have exactly one `export default` (an async function (args, sys) { … })');
  inserts.sort((a, b) => b.at - a.at || a.order - b.order);
  let out = js;
  for (const i of inserts) out = out.slice(0, i.at) + i.text + out.slice(i.at);
  return out;
}

export async function compileTool(source: string): Promise<CompiledTool> {
  if (source.length > MAX_TOOL_SOURCE) bad(`the tool source is ${source.length} characters; the limit is ${MAX_TOOL_SOURCE}`);
  const started = performance.now();
  const js = instrument(stripTypes(source));
  const compile_ms = performance.now() - started;
  if (js.length > MAX_TOOL_JS) bad(`the compiled tool is ${js.length} characters; the limit is ${MAX_TOOL_JS}`);
  return { hash: await sha256Hex(`${COMPILER_VERSION}\n${source}`), js, source_bytes: source.length, js_bytes: js.length, compile_ms };
}
