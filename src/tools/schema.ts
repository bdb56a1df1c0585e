/**
 * JSON Schema for tool parameters: checked when a tool is registered, and applied to the arguments
 * of every call before any isolate is started. @cfworker/json-schema interprets schemas without
 * generating code, so it runs where `eval` is disallowed.
 */
import { type Schema, Validator } from '@cfworker/json-schema';
import { KernelError } from '../kernel/errors.ts';

export const MAX_SCHEMA_CHARS = 16 * 1024;

/** A tool's parameters must be an object schema the validator understands. */
export function checkParameters(parameters: Record<string, unknown>): void {
  const size = JSON.stringify(parameters).length;
  if (size > MAX_SCHEMA_CHARS) throw new KernelError('EINVAL', `the parameters schema is ${size} characters; the limit is ${MAX_SCHEMA_CHARS}`);
  if (parameters.type !== 'object') throw new KernelError('EINVAL', 'parameters must be a JSON Schema with "type": "object" (a tool takes named arguments)');
  try {
    new Validator(parameters as Schema, '2020-12').validate({});
  } catch (e) {
    throw new KernelError('EINVAL', `parameters is not a usable JSON Schema: ${(e as Error).message}`);
  }
}

/** Validate a call's arguments; EINVAL lists every violation (path, keyword, message). */
const validators = new Map<string, Validator>();

export function validateArgs(tool: string, parameters: Record<string, unknown>, args: unknown): void {
  // Validators are cached by schema text (bounded): building one walks the whole schema.
  const key = JSON.stringify(parameters);
  let validator = validators.get(key);
  if (!validator) {
    if (validators.size >= 256) validators.clear();
    validator = new Validator(parameters as Schema, '2020-12', false);
    validators.set(key, validator);
  }
  const result = validator.validate(args);
  if (result.valid) return;
  const issues = result.errors
    .filter((e) => e.keyword !== 'properties' && e.keyword !== 'allOf' && e.keyword !== '$ref')
    .slice(0, 20)
    .map((e) => ({ path: e.instanceLocation, keyword: e.keyword, message: e.error }));
  const shown = issues.length ? issues : result.errors.slice(0, 5).map((e) => ({ path: e.instanceLocation, keyword: e.keyword, message: e.error }));
  throw new KernelError('EINVAL', `invalid arguments for tool ${tool}: ${shown.map((i) => `${i.path} ${i.message}`).join('; ')}`, { issues: shown });
}
