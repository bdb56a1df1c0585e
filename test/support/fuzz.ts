/**
 * Inputs generated from the project's own zod schemas, for the fuzz battery (test/fuzz.test.ts).
 * A schema becomes JSON Schema (`z.toJSONSchema`, as the API document and the LLM's tool table do),
 * and that is walked into fast-check arbitraries:
 * - `validFor(schema)`: values shaped like the schema asks;
 * - `invalidFor(schema)`: one violation somewhere inside an otherwise well-shaped value (a wrong
 *   type, a missing or unknown key, a number or length out of range, a value outside an enum).
 * Whether a value is really invalid is decided by the zod schema itself (`safeParse`), never here:
 * this only aims the generator at the edges.
 */
import fc from 'fast-check';
import { z } from 'zod';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Js {
  type?: string | string[];
  properties?: Record<string, Js>;
  required?: string[];
  additionalProperties?: boolean | Js;
  items?: Js;
  prefixItems?: Js[];
  enum?: Json[];
  const?: Json;
  anyOf?: Js[];
  oneOf?: Js[];
  allOf?: Js[];
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  $ref?: string;
  $defs?: Record<string, Js>;
}

/** The JSON Schema of a zod schema's input, as the API document and tool table are made. */
export function jsonSchemaOf(schema: z.ZodType): Js {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Js;
}

/** Strings stay short unless a bound asks for more, so a batch of requests stays small. */
const SHORT = 24;
const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null));
/** Values that break most expectations at once: the hostile JSON the battery also sends. */
export const oddValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(1e308, -1e308, 2 ** 53 + 1, -0, 1.5, '', '\u0000', 'a\u0000b', '\uffff', '🧨'.repeat(3), [], {}, [[[[[]]]]], { __proto__: 1 } as unknown as Json, { constructor: 'x' }),
  fc.string({ maxLength: 4 }).map((s) => `${s}\u0000`),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

function resolve(root: Js, s: Js): Js {
  if (!s.$ref) return s;
  const name = s.$ref.replace(/^#\/\$defs\//, '');
  return root.$defs?.[name] ?? {};
}

function types(s: Js): string[] {
  if (s.type === undefined) return [];
  return Array.isArray(s.type) ? s.type : [s.type];
}

function stringFor(s: Js): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  if (s.pattern) {
    let re: RegExp | null = null;
    try {
      re = new RegExp(s.pattern);
    } catch {
      re = null;
    }
    if (re) return fc.stringMatching(re).filter((v) => v.length >= min && v.length <= (s.maxLength ?? Infinity));
  }
  const max = Math.max(min, Math.min(s.maxLength ?? SHORT, min + SHORT));
  return fc.string({ minLength: min, maxLength: max });
}

function numberFor(s: Js, integer: boolean): fc.Arbitrary<number> {
  const lo = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + (integer ? 1 : 1e-6) : -1e6);
  const hi = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - (integer ? 1 : 1e-6) : 1e6);
  if (integer) return fc.integer({ min: Math.ceil(Math.max(lo, Number.MIN_SAFE_INTEGER)), max: Math.floor(Math.min(hi, Number.MAX_SAFE_INTEGER)) });
  return fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true });
}

/** Values shaped like `s` asks (nearly always valid; zod decides). */
export function validFor(root: Js, s0: Js = root, depth = 0): fc.Arbitrary<Json> {
  const s = resolve(root, s0);
  if (depth > 6) return scalar;
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum?.length) return fc.constantFrom(...s.enum);
  const branches = s.anyOf ?? s.oneOf;
  if (branches?.length) return fc.oneof(...branches.map((b) => validFor(root, b, depth + 1)));
  if (s.allOf?.length) return validFor(root, s.allOf[0] as Js, depth + 1);
  const t = types(s);
  if (t.length > 1) return fc.oneof(...t.map((one) => validFor(root, { ...s, type: one }, depth + 1)));
  switch (t[0]) {
    case 'string':
      return stringFor(s);
    case 'integer':
      return numberFor(s, true);
    case 'number':
      return numberFor(s, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const item = s.items ? validFor(root, s.items, depth + 1) : scalar;
      const min = s.minItems ?? 0;
      return fc.array(item, { minLength: min, maxLength: Math.max(min, Math.min(s.maxItems ?? 3, min + 3)) });
    }
    case 'object':
      return objectFor(root, s, depth);
    default:
      return s.properties ? objectFor(root, s, depth) : (fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>);
  }
}

function objectFor(root: Js, s: Js, depth: number): fc.Arbitrary<Json> {
  const props = s.properties ?? {};
  const model: Record<string, fc.Arbitrary<Json>> = {};
  for (const [k, v] of Object.entries(props)) model[k] = validFor(root, v, depth + 1);
  if (Object.keys(model).length === 0) {
    return typeof s.additionalProperties === 'object' ? fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), validFor(root, s.additionalProperties, depth + 1), { maxKeys: 3 }) : fc.constant({});
  }
  return fc.record(model, { requiredKeys: (s.required ?? []).filter((k) => k in model) }) as fc.Arbitrary<Json>;
}

/** One violation inside an otherwise well-shaped value of `s`. */
export function invalidFor(root: Js, s0: Js = root, depth = 0): fc.Arbitrary<Json> {
  const s = resolve(root, s0);
  const wrongType = oddValue;
  const options: fc.Arbitrary<Json>[] = [wrongType];
  if (s.enum) options.push(fc.string({ maxLength: 12 }).filter((v) => !s.enum?.includes(v)));
  const t = types(s);
  if (t.includes('string')) {
    if (s.maxLength !== undefined && s.maxLength < 300_000) options.push(fc.constant('x'.repeat(s.maxLength + 1)));
    if (s.minLength) options.push(fc.constant(''));
    if (s.pattern) options.push(fc.constantFrom('', ' ', '../..', 'a\u0000', 'Ω'.repeat(70)));
  }
  if (t.includes('integer') || t.includes('number')) {
    const hi = s.maximum ?? s.exclusiveMaximum;
    const lo = s.minimum ?? s.exclusiveMinimum;
    if (hi !== undefined) options.push(fc.constantFrom(hi + 1, 1e308, Number.MAX_SAFE_INTEGER + 2));
    if (lo !== undefined) options.push(fc.constantFrom(lo - 1, -1e308));
    if (t.includes('integer')) options.push(fc.constantFrom(0.5, 1.000001, 2 ** 64));
  }
  if (t.includes('array') || s.items) {
    if (s.maxItems !== undefined && s.maxItems <= 2000 && s.items) options.push(fc.array(validFor(root, s.items, depth + 1), { minLength: s.maxItems + 1, maxLength: s.maxItems + 1 }));
    if (s.items && depth < 5) options.push(fc.tuple(invalidFor(root, s.items, depth + 1), fc.array(validFor(root, s.items, depth + 1), { maxLength: 2 })).map(([bad, rest]) => [bad, ...rest]));
  }
  if (s.properties && depth < 5) {
    const base = objectFor(root, s, depth) as fc.Arbitrary<Record<string, Json>>;
    const required = (s.required ?? []).filter((k) => s.properties && k in s.properties);
    if (required.length) options.push(fc.tuple(base, fc.constantFrom(...required)).map(([o, k]) => omit(o, k)));
    if (s.additionalProperties === false) options.push(fc.tuple(base, fc.constantFrom('extra', '__proto__', 'constructor', 'a\u0000', ''), oddValue).map(([o, k, v]) => ({ ...o, [k]: v })));
    const keys = Object.keys(s.properties);
    if (keys.length) options.push(
      fc.tuple(base, fc.constantFrom(...keys)).chain(([o, k]) => invalidFor(root, s.properties?.[k] ?? {}, depth + 1).map((bad) => ({ ...o, [k]: bad }))),
    );
  }
  return fc.oneof(...options);
}

function omit(o: Record<string, Json>, key: string): Record<string, Json> {
  const { [key]: _dropped, ...rest } = o;
  return rest;
}

/** A nesting `depth` levels deep, as JSON text (built iteratively: the generator must not overflow). */
export function deepJson(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

/** Text that is not JSON: truncations of a valid body, stray bytes, JSON-like near misses. */
export const malformedJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('{', '}', '{"a":}', '{"a" 1}', "{'a': 1}", '[1,]', '{"a":1,}', 'NaN', 'undefined', '{"a":01}', '\u0000', '{"\u0000":', '{"a":"\\u12"}', '{"a":1}{"b":2}', '\ufeff{', '{"a":-}', '1e', '--1'),
  fc.string({ maxLength: 20 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
);
