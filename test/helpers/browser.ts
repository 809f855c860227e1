import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

/** Debian's Chromium; Playwright's own browser download is never used. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Why browser tests cannot run here, or null when they can. */
export function browserSkipReason(): string | null {
  return existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} is missing: browser tests skipped (install it with: apt-get install chromium)`;
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Headless Chromium with a fresh profile. The flags keep it from reaching out to Google
 * services (sync, component updates, QUIC probes) on a machine without internet.
 */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'iris-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 760 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface PageWatch {
  /** Console errors, uncaught page errors and requests to other origins seen so far. */
  problems(): string[];
  /** Lets the console report a failed request of this status (an error the test provokes). */
  allowStatus(status: number): void;
}

/** Records what must never happen on the page: console errors, uncaught errors, foreign requests. */
export function watchPage(page: Page, origin: string): PageWatch {
  const problems: string[] = [];
  const allowed = new Set<number>();
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() !== 'error') return;
    // Chromium logs every non-2xx fetch; the ones a test asks for are expected.
    const status = /the server responded with a status of (\d+)/.exec(m.text());
    if (status && allowed.has(Number(status[1]))) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const url = r.url();
    if (!(url.startsWith(`${origin}/`) || url.startsWith('data:') || url.startsWith('blob:'))) problems.push(`request to another origin: ${url}`);
  });
  return { problems: () => [...problems], allowStatus: (s) => allowed.add(s) };
}
