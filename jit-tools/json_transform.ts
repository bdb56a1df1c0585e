/**
 * Convert between CSV and JSON, optionally picking and renaming fields and filtering rows.
 * Reads its input from `input` or from a file (`path`), and writes the output to `out` if given.
 */
type Row = Record<string, unknown>;
interface Args {
  from: 'csv' | 'json';
  to: 'csv' | 'json';
  input?: string;
  path?: string;
  out?: string;
  fields?: string[];
  where?: { field: string; equals: string | number | boolean };
  delimiter?: string;
}

function parseCsv(text: string, delimiter: string): Row[] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) {
      record.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      field = '';
      if (record.length > 1 || record[0] !== '') records.push(record);
      record = [];
    } else field += c;
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  const [header, ...rows] = records;
  if (!header) return [];
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}

function csvCell(value: unknown, delimiter: string): string {
  const s = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return s.includes('"') || s.includes(delimiter) || s.includes('\n') ? `"${s.replaceAll('"', '""')}"` : s;
}

function toCsv(rows: Row[], delimiter: string): string {
  const header: string[] = [];
  for (const row of rows) for (const k of Object.keys(row)) if (!header.includes(k)) header.push(k);
  const lines = [header.map((h) => csvCell(h, delimiter)).join(delimiter)];
  for (const row of rows) lines.push(header.map((h) => csvCell(row[h], delimiter)).join(delimiter));
  return `${lines.join('\n')}\n`;
}

export default async function jsonTransform(args: Args, sys: Sys) {
  const delimiter = args.delimiter ?? ',';
  const text = args.input ?? (args.path ? (await sys.fs_read({ path: args.path })).content : '');
  let rows: Row[];
  if (args.from === 'csv') rows = parseCsv(text, delimiter);
  else {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error('JSON input must be an array of objects');
    rows = parsed as Row[];
  }
  if (args.where) {
    const { field, equals } = args.where;
    rows = rows.filter((r) => String(r[field]) === String(equals));
  }
  if (args.fields) {
    const fields = args.fields;
    rows = rows.map((r) => Object.fromEntries(fields.map((f) => [f, r[f] ?? null])));
  }
  const output = args.to === 'csv' ? toCsv(rows, delimiter) : JSON.stringify(rows, null, 2);
  if (args.out) await sys.fs_write({ path: args.out, content: output });
  return { rows: rows.length, ...(args.out ? { written_to: args.out } : { output }) };
}
