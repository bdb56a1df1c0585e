/**
 * Images: what a process is started from. An image names the system prompt, how syscalls are
 * offered to the model (native tools or [SYS_CALL::…] text), and optionally a model and a script
 * for the scripted provider. Built-in images are plain data here; `demo` and `demo-helper` make
 * `npm start` do something real with no API key.
 */
import type { Script } from '../llm/scripted.ts';
import type { ToolMode } from '../llm/types.ts';
import type { GrantInput } from './capabilities.ts';
import type { ModelRef } from './pcb.ts';
import type { AutoPolicy } from '../checkpoints/policy.ts';

export interface Image {
  readonly name: string;
  readonly description: string;
  readonly system_prompt: string;
  readonly tool_mode: ToolMode;
  readonly model?: ModelRef;
  readonly script?: Script;
  /** The working set's token budget for its processes (default 64,000). */
  readonly max_context_tokens?: number;
  /** The capabilities its agents need; a spawner grants these unless it names others. */
  readonly capabilities: readonly GrantInput[];
  /** Built-in JIT tools (jit-tools/<name>.ts) its processes start with, registered like any tool. */
  readonly tools?: readonly string[];
  /** Automatic checkpoints for its processes (docs/checkpoints.md); a spawn request may override. */
  readonly checkpoints?: Partial<AutoPolicy>;
}

/** Work in its own files, start a few children, signal them, talk to other processes of the tenant, keep private long-term memory. No network unless granted. */
const STANDARD: readonly GrantInput[] = ['fs:/**:rw', 'spawn:max=16', 'proc:signal', 'ipc:send:pid/*', 'ipc:publish:topic/**', 'ipc:subscribe:topic/**', 'mem:self:rw'];

const BASE_PROMPT = [
  'You are an agent process running on AgentOS. You act only through syscalls.',
  'Files you write persist in your own filesystem. Use sleep to wait for time to pass, spawn and wait to delegate,',
  'and exit when the task is done (put the answer in exit.result). A syscall that fails returns an error',
  'with a code (EINVAL, EPERM, ENOENT …) and a message; read it and correct the call.',
].join(' ');

export const IMAGES: Readonly<Record<string, Image>> = {
  default: {
    name: 'default',
    description: 'A general agent with the standard syscall table.',
    system_prompt: BASE_PROMPT,
    tool_mode: 'native',
    capabilities: STANDARD,
  },
  toolsmith: {
    name: 'toolsmith',
    description: 'A general agent that writes its own TypeScript tools; starts with the built-in json_transform and text_diff tools.',
    system_prompt: `${BASE_PROMPT} You can write tools in TypeScript with tool_register and call them by name (see their descriptions).`,
    tool_mode: 'native',
    capabilities: [...STANDARD, 'tool:register', 'tool:call:*'],
    tools: ['json_transform', 'text_diff'],
  },
  demo: {
    name: 'demo',
    description: 'Scripted demo: writes a plan, sleeps 2 s, spawns a helper, waits for it, records its answer and exits.',
    system_prompt: BASE_PROMPT,
    tool_mode: 'native',
    model: { provider: 'scripted', model: 'scripted' },
    capabilities: STANDARD,
    script: [
      { text: 'I will write down the plan first.', tool_calls: [{ name: 'fs_write', args: { path: 'notes/plan.md', content: '# Plan\nTask: {{task}}\n1. nap\n2. delegate\n' } }] },
      { text: 'Now a short nap.', tool_calls: [{ name: 'sleep', args: { seconds: 2 } }] },
      { text: 'Delegating to a helper.', tool_calls: [{ name: 'spawn', args: { name: 'helper', task: 'Say hello about: {{task}}', image: 'demo-helper' } }] },
      { text: 'Waiting for the helper.', tool_calls: [{ name: 'wait', args: { timeout_seconds: 60 } }] },
      { text: 'Recording the result.', tool_calls: [{ name: 'fs_write', args: { path: 'notes/result.json', content: '{{last_result}}' } }] },
      { text: 'Done.', tool_calls: [{ name: 'exit', args: { code: 0, result: 'plan written, helper finished' } }] },
    ],
  },
  idle: {
    name: 'idle',
    description: 'Scripted: sleeps in one-hour naps (up to a day) until signalled; a placeholder child, or a target for signals.',
    system_prompt: BASE_PROMPT,
    tool_mode: 'native',
    model: { provider: 'scripted', model: 'scripted' },
    capabilities: [],
    script: Array.from({ length: 24 }, () => ({ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] })),
  },
  'demo-helper': {
    name: 'demo-helper',
    description: 'Scripted child for the demo: writes a greeting file and exits with it as its result.',
    system_prompt: BASE_PROMPT,
    tool_mode: 'text',
    model: { provider: 'scripted', model: 'scripted' },
    capabilities: ['fs:/**:rw'],
    script: [
      { text: 'Writing my greeting. [SYS_CALL::{"name": "fs_write", "args": {"path": "hello.txt", "content": "hello from the helper"}}]' },
      { text: '[SYS_CALL::{"name": "exit", "args": {"code": 0, "result": "helper says hello"}}]' },
    ],
  },
};

export const IMAGE_NAMES = Object.keys(IMAGES);
