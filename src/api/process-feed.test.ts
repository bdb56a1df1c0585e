import { describe, expect, it } from 'vitest';
import type { ProcessRow } from '../process/table.ts';
import { diffPage } from './process-feed.ts';

const row = (pid: string, version: number): ProcessRow => ({ pid, ppid: null, name: pid, image: 'default', state: 'ready', priority: 50, exit_code: null, created_at: 1, updated_at: 1, version });

describe('diffPage: what a live ps client must be told', () => {
  it('nothing when the page is the same', () => {
    expect(diffPage(new Map([['a', 1]]), [row('a', 1)])).toEqual({ changed: [], removed: [] });
  });

  it('a new row and a row with a newer version are changed; a row gone from the page is removed', () => {
    const d = diffPage(
      new Map([
        ['a', 1],
        ['b', 3],
        ['c', 2],
      ]),
      [row('a', 2), row('b', 3), row('d', 1)],
    );
    expect(d.changed.map((r) => r.pid)).toEqual(['a', 'd']);
    expect(d.removed).toEqual(['c']);
  });

  it('from an empty page every row is changed', () => {
    expect(diffPage(new Map(), [row('a', 1), row('b', 1)]).changed).toHaveLength(2);
  });
});
