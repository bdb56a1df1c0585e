/**
 * The synthetic long-horizon session for the context benchmark (see ./run.mjs). Deterministic for a
 * seed: the same turns, facts and queries for every strategy.
 *
 * One turn = one step: an assistant page (a short sentence and one tool call) and the tool's result
 * page. Results are tool outputs of roughly 60–400 tokens built from word lists: log files (fs_read),
 * directory listings (fs_list), search results and tickets (net_fetch). The filler reuses the same
 * entity pools the facts use (services, hosts, projects, people, vault and locker numbers …), so a
 * fact's key terms also occur in unrelated pages and lexical retrieval has distractors to get past.
 *
 * Facts: `facts` sentences planted in result pages of early/mid turns, one per turn, among filler
 * (e.g. "Ops note: the access code for vault 17 is 4431."). Each is asked about exactly once, at a
 * later turn at least `minGap` turns after it, by a short result page (an inbox file, a ticket, or a
 * child's exit result) whose question shares the fact's key terms in slightly different wording
 * ("Which access code opens vault 17?"; one of three phrasings per kind of fact, picked at random).
 * Sensitivity workloads: `noisyQueries` puts the question inside a ticket that also carries ~150–250
 * tokens of attached log lines; `distractors: false` drops the filler log lines that mention the
 * facts' kinds of entities (by default half of the filler log lines mention a vault, a locker, a
 * rack, a port, a project's token, a customer's invoice …); `paraphrase` rewords every question so it
 * shares only the entity's name with its fact (the same turns, facts and answers otherwise).
 */
import type { PageBody } from '../../../src/kernel/context.ts';
import { countTokens } from '../../../src/llm/tokens.ts';

export interface Fact {
  readonly id: number;
  readonly template: string;
  /** The sentence planted in the fact turn's result page (verbatim; no quotes or backslashes). */
  readonly sentence: string;
  readonly question: string;
  readonly factTurn: number;
  readonly queryTurn: number;
}

export interface Turn {
  readonly turn: number;
  readonly assistant: Extract<PageBody, { kind: 'assistant' }>;
  readonly result: Extract<PageBody, { kind: 'result' }>;
  /** A one-line account of the turn (what a summariser would keep of it). */
  readonly digest: string;
  readonly factId?: number;
  readonly queryOf?: number;
}

export interface Workload {
  readonly task: Extract<PageBody, { kind: 'task' }>;
  readonly turns: readonly Turn[];
  readonly facts: readonly Fact[];
}

export interface WorkloadOptions {
  readonly turns: number;
  readonly facts: number;
  readonly seed: number;
  readonly minGap: number;
  readonly noisyQueries?: boolean;
  /** Filler log lines that mention the facts' kinds of entities (vaults, lockers, racks, ports …); default true. */
  readonly distractors?: boolean;
  /**
   * Paraphrased questions: the same facts, asked in other words that share only the entity's name with
   * the fact ("What combination unlocks vault 17?" for "the access code for vault 17 is 4431").
   */
  readonly paraphrase?: boolean;
}

// --- randomness ----------------------------------------------------------------------------------

/** mulberry32: a small, fast, seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rand {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j] as T, a[i] as T];
    }
    return a;
  }
  pad(n: number, width = 2): string {
    return String(n).padStart(width, '0');
  }
}

// --- vocabulary ----------------------------------------------------------------------------------

const SERVICES = 'billing ledger search checkout gateway notifier scheduler inventory reports auth media payments catalog metrics shipping pricing identity webhooks archive tracing geocoder mailer'.split(' ');
const ANIMALS = 'orca lynx heron otter bison falcon marten ibex puffin walrus gecko tapir condor dingo okapi quokka serval narwhal'.split(' ');
const ROLES = 'db web cache queue api worker'.split(' ');
const PROJECTS = 'bluefin kestrel juniper marigold sequoia tundra saffron cobalt meridian lantern basalt harbor zephyr cinder aurora willow granite pioneer solstice quartz'.split(' ');
const FIRST = 'Amara Bruno Chiara Dmitri Elena Farid Greta Hiro Ingrid Jonas Keiko Lars Mateo Nadia Omar Priya Quentin Rosa Stefan Tomas Ulla Vikram Wanda Yusuf Zofia'.split(' ');
const LAST = 'Abbott Brandt Castillo Dufresne Eriksen Fischer Gallo Hartmann Iwata Jensen Kowalski Lindqvist Moreau Novak Okafor Petrov Quiroga Rossi Sato Tanaka Urban Varga Weber Yilmaz Zeller'.split(' ');
const LIBS = 'protobuf grpcio openssl libpq zstd jemalloc nghttp2 sqlite3 pydantic fastify undici esbuild'.split(' ');
const CURRENCIES = 'CHF JPY SEK NOK DKK PLN CZK HUF GBP AUD'.split(' ');
const COLOURS = 'grey green blue red yellow black white orange'.split(' ');
const DAYS = 'Monday Tuesday Wednesday Thursday Friday'.split(' ');
const ENVS = 'staging production canary preview'.split(' ');
const WORDS =
  'request response timeout retry queue worker cache index schema migration release rollout config secret token session header payload latency throughput error warning upstream downstream replica shard partition snapshot backup restore deploy build pipeline artifact container image cluster node region zone bucket object stream batch job cron trigger handler middleware router client server proxy balancer certificate rotation audit policy quota limit budget invoice customer account profile order refund shipment label report dashboard alert incident runbook owner review approval change ticket backlog sprint estimate priority severity impact summary detail note update fix patch regression test coverage flaky benchmark profile memory cpu disk network packet socket connection pool thread lock mutex event message topic consumer producer offset commit rollback transaction'.split(
    ' ',
  );
const FILE_WORDS = 'handler client config utils schema worker model routes index types fixtures migrate service store cache adapter parser writer reader policy limits queue retry errors metrics events'.split(' ');
const LOG_LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
const HTTP = ['GET', 'GET', 'POST', 'PUT', 'DELETE'];

// --- filler --------------------------------------------------------------------------------------

/** Tokens of the result page around the generated lines (tool name, JSON keys, path …), roughly. */
const ENVELOPE_TOKENS = 30;

class Filler {
  constructor(
    readonly r: Rand,
    readonly distractors = true,
  ) {}
  host(): string {
    return `${this.r.pick(ANIMALS)}-${this.r.pick(ROLES)}-${this.r.pad(this.r.int(1, 24))}`;
  }
  person(): string {
    return `${this.r.pick(FIRST)} ${this.r.pick(LAST)}`;
  }
  ts(): string {
    const r = this.r;
    return `2025-${r.pad(r.int(1, 12))}-${r.pad(r.int(1, 28))}T${r.pad(r.int(0, 23))}:${r.pad(r.int(0, 59))}:${r.pad(r.int(0, 59))}Z`;
  }
  words(n: number): string {
    return Array.from({ length: n }, () => this.r.pick(WORDS)).join(' ');
  }
  sentence(): string {
    const s = this.words(this.r.int(6, 14));
    return `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
  }
  /** A log message; some mention the entities facts are about (distractors). */
  logMessage(svc: string): string {
    const r = this.r;
    const pick = r.int(0, 13);
    // Without distractors, the entity lines (6-12) become generic ones.
    switch (this.distractors || pick < 6 || pick > 12 ? pick : 13) {
      case 0:
        return `request ${r.pick(HTTP)} /${r.pick(WORDS)}/${r.int(100, 99999)} ${r.pick([200, 200, 200, 201, 204, 404, 500, 503])} in ${r.int(2, 2400)}ms host=${this.host()}`;
      case 1:
        return `cache miss key=${r.pick(WORDS)}:${r.int(1, 99999)} host=${this.host()}`;
      case 2:
        return `retrying connection to ${this.host()} (attempt ${r.int(1, 5)})`;
      case 3:
        return `job ${r.pick(WORDS)}-${r.int(100, 9999)} finished in ${r.int(1, 900)}s`;
      case 4:
        return `healthcheck ok host=${this.host()} load=${(r.next() * 4).toFixed(2)}`;
      case 5:
        return `slow query on ${svc} db: ${r.int(200, 9000)}ms rows=${r.int(1, 50000)}`;
      case 6:
        return `vault ${r.int(10, 99)} sync ok, ${r.int(1, 400)} secrets checked`;
      case 7:
        return `locker ${r.int(100, 999)} badge scan by ${this.person()}`;
      case 8:
        return `rack ${r.pick('ABCDEFGH'.split(''))}${r.int(1, 40)} inlet temperature ${r.int(18, 31)}C`;
      case 9:
        return `deploy of ${r.pick(PROJECTS)} to ${r.pick(ENVS)} started by ${this.person()}`;
      case 10:
        return `port ${r.int(1024, 65000)} open on ${this.host()} (${r.pick(SERVICES)} database)`;
      case 11:
        return `token refresh for project ${r.pick(PROJECTS)} ok, next check in ${r.int(1, 48)}h`;
      case 12:
        return `invoice ${r.int(10000, 99999)} for customer ${this.person()} sent (${r.pick(CURRENCIES)} ${r.int(20, 9000)}.00)`;
      default:
        return `${r.pick(WORDS)} ${r.pick(WORDS)} ${r.pick(['ok', 'done', 'skipped', 'failed', 'queued'])} after ${r.int(1, 500)}ms`;
    }
  }
  logLines(svc: string, targetTokens: number): string[] {
    const lines: string[] = [];
    let n = 0;
    while (n < targetTokens) {
      const line = `${this.ts()} ${this.r.pick(LOG_LEVELS)} ${svc} ${this.logMessage(svc)}`;
      lines.push(line);
      n += countTokens(line) + 1;
    }
    return lines;
  }
}

/** A tool call and its result page for an ordinary turn; `fact` (if any) is planted among the filler. */
function ordinaryTurn(f: Filler, turn: number, targetTokens: number, fact: string | undefined): { text: string; name: string; args: Record<string, unknown>; value: unknown; digest: string } {
  const r = f.r;
  const svc = r.pick(SERVICES);
  const target = Math.max(10, targetTokens - ENVELOPE_TOKENS);
  const kind = fact ? r.pick(['log', 'search', 'ticket'] as const) : r.pick(['log', 'log', 'list', 'search', 'ticket'] as const);
  const insert = (lines: string[], line: string) => lines.splice(r.int(0, lines.length), 0, line);
  switch (kind) {
    case 'log': {
      const day = `2025-${r.pad(r.int(1, 12))}-${r.pad(r.int(1, 28))}`;
      const path = `/logs/${svc}/${day}.log`;
      const lines = f.logLines(svc, target);
      if (fact) insert(lines, `${f.ts()} NOTE ${svc} ${fact}`);
      const content = lines.join('\n');
      return {
        text: r.pick([`Reading the ${svc} log for ${day}.`, `Let me check the ${svc} logs.`, `Looking for errors in ${path}.`]),
        name: 'fs_read',
        args: { path },
        value: { path, content, size: content.length },
        digest: `read ${path} (${lines.length} lines)`,
      };
    }
    case 'list': {
      const path = `/src/${svc}`;
      const entries: { name: string; type: 'file' | 'dir'; size?: number }[] = [];
      let n = 0;
      while (n < target) {
        const dir = r.next() < 0.15;
        const name = dir ? `${r.pick(FILE_WORDS)}` : `${r.pick(FILE_WORDS)}_${r.pick(FILE_WORDS)}.${r.pick(['ts', 'ts', 'json', 'md', 'sql'])}`;
        const e = dir ? { name, type: 'dir' as const } : { name, type: 'file' as const, size: r.int(120, 48000) };
        entries.push(e);
        n += countTokens(JSON.stringify(e)) + 1;
      }
      return { text: r.pick([`Listing ${path}.`, `What is in ${path}?`, `Checking the layout of the ${svc} sources.`]), name: 'fs_list', args: { path }, value: { path, entries }, digest: `listed ${path} (${entries.length} entries)` };
    }
    case 'search': {
      const q = `${svc} ${f.words(2)}`;
      const url = `https://search.internal/api?q=${encodeURIComponent(q)}`;
      const lines: string[] = [];
      let n = 0;
      let i = 1;
      while (n < target) {
        const line = `${i++}. ${f.words(3)} (${r.pick(SERVICES)} wiki) - ${f.sentence()} ${r.next() < 0.4 ? f.logMessage(svc) : f.sentence()}`;
        lines.push(line);
        n += countTokens(line) + 1;
      }
      if (fact) insert(lines, `${i}. ops notes (${svc} wiki) - ${fact}`);
      const body = lines.join('\n');
      return {
        text: r.pick([`Searching the wiki for ${q}.`, `Let me search for ${q}.`]),
        name: 'net_fetch',
        args: { url, method: 'GET' },
        value: { status: 200, headers: { 'content-type': 'text/plain' }, body, bytes: body.length, truncated: false },
        digest: `searched "${q}" (${lines.length} hits)`,
      };
    }
    case 'ticket': {
      const id = r.int(1000, 99999);
      const url = `https://tickets.internal/api/tickets/${id}`;
      const lines = [`Ticket #${id} [${svc}] ${f.words(4)}`, `Reporter: ${f.person()}  Priority: ${r.pick(['P1', 'P2', 'P3', 'P4'])}`];
      let n = countTokens(lines.join('\n'));
      while (n < target) {
        const line = r.next() < 0.5 ? `- ${f.person()}: ${f.sentence()} ${f.sentence()}` : `  ${f.ts()} ${f.logMessage(svc)}`;
        lines.push(line);
        n += countTokens(line) + 1;
      }
      if (fact) lines.splice(r.int(2, lines.length), 0, `- ${f.person()}: ${fact}`);
      const body = lines.join('\n');
      return {
        text: r.pick([`Opening ticket ${id}.`, `Reading ticket #${id} about ${svc}.`]),
        name: 'net_fetch',
        args: { url, method: 'GET' },
        value: { status: 200, headers: { 'content-type': 'text/plain' }, body, bytes: body.length, truncated: false },
        digest: `read ticket #${id} (${svc})`,
      };
    }
  }
}

// --- facts ---------------------------------------------------------------------------------------

interface FactDraft {
  readonly template: string;
  readonly sentence: string;
  readonly question: string;
}

/** Fact sentences and their questions; entities are distinct across facts (each question has one answer). */
function draftFacts(r: Rand, n: number, paraphrase: boolean): FactDraft[] {
  const f = new Filler(r);
  // Paraphrased questions keep the entity's name and reword the rest (no other content word of the fact).
  const ask = (plain: string[], reworded: string[]) => r.pick(paraphrase ? reworded : plain);
  const vaults = r.shuffle(Array.from({ length: 90 }, (_, i) => i + 10));
  const lockers = r.shuffle(Array.from({ length: 900 }, (_, i) => i + 100));
  const services = r.shuffle(SERVICES);
  const projects = r.shuffle(PROJECTS);
  const hosts = r.shuffle(ANIMALS.flatMap((a) => ROLES.map((ro) => `${a}-${ro}-${r.pad(r.int(1, 24))}`)));
  const people = r.shuffle(FIRST.flatMap((a) => LAST.map((b) => `${a} ${b}`)));
  const libs = r.shuffle(LIBS);
  const take = <T>(xs: T[]): T => {
    const x = xs.shift();
    if (x === undefined) throw new Error('entity pool exhausted: lower --facts');
    return x;
  };
  const templates: (() => FactDraft)[] = [
    () => {
      const v = take(vaults);
      return { template: 'vault', sentence: `Ops note: the access code for vault ${v} is ${r.int(1000, 9999)}.`, question: ask([`Which access code opens vault ${v}?`, `What is the access code for vault ${v}?`, `I need the code to open vault ${v}. What is it?`], [`What combination unlocks vault ${v}?`, `How do I get into vault ${v}: which digits do I punch in?`, `Tell me the PIN that gets vault ${v} open.`]) };
    },
    () => {
      const h = take(hosts);
      return { template: 'rack', sentence: `Server ${h} was moved to rack ${r.pick('ABCDEFGH'.split(''))}${r.int(1, 40)} in hall ${r.int(1, 6)}.`, question: ask([`Which rack is server ${h} in since the move?`, `Where was server ${h} moved to (rack and hall)?`, `Server ${h}: which rack is it in now?`], [`Where does machine ${h} live now after the relocation?`, `${h} got relocated; what is its new location?`, `Which cabinet slot and building area house box ${h} these days?`]) };
    },
    () => {
      const p = take(projects);
      return { template: 'token', sentence: `The deploy token for project ${p} expires on 2026-${r.pad(r.int(1, 12))}-${r.pad(r.int(1, 28))}.`, question: ask([`When does the deploy token of project ${p} expire?`, `What is the expiry date of the ${p} deploy token?`, `Until when is the deploy token for ${p} valid?`], [`Until what date will the ${p} release credential keep working?`, `When does the ${p} shipping key run out?`, `How long does the ${p} publish secret stay good?`]) };
    },
    () => {
      const c = take(people);
      return { template: 'currency', sentence: `Customer ${c} wants invoices in ${r.pick(CURRENCIES)} from now on.`, question: ask([`Which currency should invoices for customer ${c} use?`, `In what currency does ${c} want to be invoiced?`, `Customer ${c}: which invoice currency?`], [`What money should ${c} be billed in?`, `Which denomination does ${c} pay us in now?`, `How should we price the bills we send ${c}?`]) };
    },
    () => {
      const s = take(services);
      return { template: 'oncall', sentence: `${f.person()} is the on-call engineer for the ${s} service this week.`, question: ask([`Who is the on-call engineer for ${s} this week?`, `Who is on call for the ${s} service?`, `Which engineer covers ${s} on-call this week?`], [`Who carries the pager for ${s} at the moment?`, `If ${s} breaks tonight, whom do I wake up?`, `Who answers ${s} emergencies right now?`]) };
    },
    () => {
      const s = take(services);
      return { template: 'port', sentence: `The ${s} staging database listens on port ${r.int(20000, 60000)}.`, question: ask([`What port does the staging database of ${s} listen on?`, `Which port is the ${s} staging database on?`, `On which port can I reach the ${s} staging database?`], [`How do I connect to the pre-production DB of ${s}: what is the socket number?`, `Which number should my client dial for the ${s} test data store?`, `What TCP endpoint number serves the preprod DB of ${s}?`]) };
    },
    () => {
      const p = take(people);
      return { template: 'room', sentence: `The migration review with ${p} is booked in room ${r.int(100, 699)} on ${r.pick(DAYS)}.`, question: ask([`Which room is the migration review with ${p} booked in?`, `Where is the migration review with ${p}?`, `What room did we book for the review with ${p}?`], [`Where do we meet ${p} to go over the move?`, `Which meeting space is reserved for the ${p} session about moving?`, `Where is the ${p} walkthrough happening?`]) };
    },
    () => {
      const p = take(projects);
      return { template: 'budget', sentence: `Finance approved a budget of ${r.int(5, 95) * 1000} EUR for the ${p} rollout.`, question: ask([`How much budget did finance approve for the ${p} rollout?`, `What is the approved budget for the ${p} rollout?`, `How much can we spend on the ${p} rollout?`], [`How much money did accounting sign off for launching ${p}?`, `What is the spending cap for the ${p} launch?`, `How many euros were granted to ship ${p}?`]) };
    },
    () => {
      const l = take(lockers);
      return { template: 'locker', sentence: `The spare key for locker ${l} is kept in drawer ${r.int(1, 9)} of the ${r.pick(COLOURS)} cabinet.`, question: ask([`Where is the spare key for locker ${l} kept?`, `Which drawer has the spare key for locker ${l}?`, `Where do we keep the spare key of locker ${l}?`], [`Where is the duplicate opener for locker ${l} stashed?`, `I lost my way into locker ${l}; where is the backup?`, `Locker ${l}: where can I find the reserve copy?`]) };
    },
    () => {
      const lib = take(libs);
      const s = take(services);
      return { template: 'version', sentence: `Pin ${lib} to version ${r.int(1, 5)}.${r.int(0, 30)}.${r.int(0, 9)}; newer releases break the ${s} exporter.`, question: ask([`Which version of ${lib} should be pinned for the ${s} exporter?`, `What ${lib} version does the ${s} exporter need?`, `Which ${lib} release is safe for the ${s} exporter?`], [`Which ${lib} build is compatible with the ${s} exporter?`, `What ${lib} should we lock to so the ${s} exporter keeps working?`, `Up to which ${lib} number is the ${s} exporter fine?`]) };
    },
  ];
  return Array.from({ length: n }, (_, i) => (templates[i % templates.length] as () => FactDraft)());
}

/** A short page that asks the question (or, noisy, a ticket with the question and attached logs). */
function queryTurn(f: Filler, question: string, noisy: boolean): { text: string; name: string; args: Record<string, unknown>; value: unknown; digest: string } {
  const r = f.r;
  const id = r.int(1000, 99999);
  if (noisy) {
    const svc = r.pick(SERVICES);
    const url = `https://tickets.internal/api/tickets/${id}`;
    const body = [`Ticket #${id} [ops] question from ${f.person()}`, question, 'Attached log excerpt:', ...f.logLines(svc, r.int(150, 250))].join('\n');
    return { text: `Opening ticket ${id}.`, name: 'net_fetch', args: { url, method: 'GET' }, value: { status: 200, headers: { 'content-type': 'text/plain' }, body, bytes: body.length, truncated: false }, digest: `read ticket #${id} (a question)` };
  }
  switch (r.int(0, 2)) {
    case 0: {
      const path = `/inbox/msg-${id}.txt`;
      const content = `From: ${f.person()}\nSubject: quick question\n\n${question}\nThanks.`;
      return { text: 'Checking the inbox.', name: 'fs_read', args: { path }, value: { path, content, size: content.length }, digest: `read ${path} (a question)` };
    }
    case 1: {
      const url = `https://tickets.internal/api/tickets/${id}`;
      const body = `Ticket #${id} [ops] question from ${f.person()}\n${question}`;
      return { text: `Opening ticket ${id}.`, name: 'net_fetch', args: { url, method: 'GET' }, value: { status: 200, headers: { 'content-type': 'text/plain' }, body, bytes: body.length, truncated: false }, digest: `read ticket #${id} (a question)` };
    }
    default: {
      const pid = `ops-${id}`;
      return { text: 'Waiting for the operator helper.', name: 'wait', args: {}, value: { pid, exit: { code: 0, result: `Operator asks: ${question}` } }, digest: `helper ${pid} relayed a question` };
    }
  }
}

export const TASK_TEXT = [
  'You are the operations agent for the ACME platform team. Work through the queue: read logs, tickets and',
  'search results, fix what you can, and keep notes. Operators will ask you questions about details you have',
  'seen earlier in this session (codes, rooms, versions, owners); answer them exactly.',
].join(' ');

export function generateWorkload(o: WorkloadOptions): Workload {
  const r = new Rand(prng(o.seed));
  const f = new Filler(r, o.distractors ?? true);
  const drafts = draftFacts(r, o.facts, o.paraphrase ?? false);
  // Fact turns in the first ~70% of the session, each query ≥ minGap turns later; every turn holds at most one of them.
  const used = new Set<number>();
  const lastQuery = o.turns - 2; // leave room after a query for the answer (and an explicit page_in)
  const latestFact = Math.min(Math.floor(o.turns * 0.7), lastQuery - o.minGap);
  if (latestFact < 10) throw new Error('too few turns for the requested gap');
  const facts: Fact[] = drafts.map((d, id) => {
    for (;;) {
      const factTurn = r.int(10, latestFact);
      const queryTurn = r.int(factTurn + o.minGap, lastQuery);
      if (used.has(factTurn) || used.has(queryTurn)) continue;
      used.add(factTurn);
      used.add(queryTurn);
      return { id, ...d, factTurn, queryTurn };
    }
  });
  const factAt = new Map(facts.map((x) => [x.factTurn, x]));
  const queryAt = new Map(facts.map((x) => [x.queryTurn, x]));
  const turns: Turn[] = [];
  for (let t = 1; t <= o.turns; t++) {
    const fact = factAt.get(t);
    const query = queryAt.get(t);
    const g = query ? queryTurn(f, query.question, o.noisyQueries ?? false) : ordinaryTurn(f, t, r.int(60, 400), fact?.sentence);
    const call_id = `call_${t}`;
    turns.push({
      turn: t,
      assistant: { kind: 'assistant', text: g.text, tool_calls: [{ id: call_id, name: g.name, args: g.args }] },
      result: { kind: 'result', call_id, name: g.name, via: 'native', result: { ok: true, value: g.value } },
      digest: g.digest,
      ...(fact ? { factId: fact.id } : {}),
      ...(query ? { queryOf: query.id } : {}),
    });
  }
  return { task: { kind: 'task', text: TASK_TEXT }, turns, facts };
}
