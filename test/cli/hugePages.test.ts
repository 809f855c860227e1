import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { hugePagesApplicable } from '../../src/cli/hugePages.js';
import { startIris } from '../helpers/server.js';

/** Pids whose parent is `ppid` (Linux /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  if (!existsSync('/proc')) return out; // huge pages only apply on Linux
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // the command name may hold spaces and parentheses: the fields after the last ')'
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

async function gone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

test('huge pages: off when asked, or when the tunable is already set', () => {
  assert.equal(hugePagesApplicable({ IRIS_HUGE_PAGES: '0' }), false);
  assert.equal(hugePagesApplicable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }), false);
  assert.equal(hugePagesApplicable({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0' }), false);
});

test('iris serve runs the model in a child with huge pages, which ends with its parent', async () => {
  const applicable = hugePagesApplicable({});
  const server = await startIris([], { modelPath: null });
  try {
    const kids = childrenOf(server.child.pid!);
    if (!applicable) {
      assert.deepEqual(kids, [], 'no relaunch where huge pages do not apply');
      return;
    }
    assert.equal(kids.length, 1, `one relaunched child, got ${kids.join(',')}`);
    const env = readFileSync(`/proc/${kids[0]}/environ`, 'utf8').split('\0');
    assert.ok(env.includes('GLIBC_TUNABLES=glibc.malloc.hugetlb=1'), 'the child has the tunable');
    const health = await fetch(`${server.baseUrl}/health`);
    assert.equal(health.status, 200);
    // The parent killed outright: the child must not outlive it (it would hold the port).
    server.child.kill('SIGKILL');
    assert.ok(await gone(kids[0]!, 5000), 'the child exits when its parent dies');
  } finally {
    await server.stop();
  }
});

test('SIGTERM reaches the relaunched server, which exits 0 with its parent', async () => {
  const server = await startIris([], { modelPath: null });
  const kids = childrenOf(server.child.pid!);
  server.child.kill('SIGTERM');
  const { code, signal } = await server.exited;
  assert.equal(code, 0, `exit signal ${signal}; stderr: ${server.stderr()}; stdout: ${server.stdout()}`);
  for (const k of kids) assert.ok(await gone(k, 5000));
});
