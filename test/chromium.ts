import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

/** The Chromium of the Debian packages (`.ci/run` installs it), or the one `CHROMIUM` names; undefined when there is none. */
export function findChromium(): string | undefined {
  for (const candidate of [process.env.CHROMIUM, 'chromium', 'chromium-browser'].filter(Boolean) as string[]) {
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

/** A page opened in headless Chromium, driven over the DevTools protocol through a pipe (no library, no port). */
export interface OpenedPage {
  /** Console errors, uncaught exceptions and browser log errors (a refused script, an image that did not load). */
  errors: string[];
  evaluate<T>(expression: string): Promise<T>;
  screenshot(): Promise<Buffer>;
  close(): Promise<void>;
}

/** Opens `url` in a fresh headless Chromium at `width`×`height` and waits for `readyExpression` to be true. */
export async function openPage(chromium: string, url: string, { width = 1280, height = 900, readyExpression = 'true', timeoutMs = 20_000 } = {}): Promise<OpenedPage> {
  const profile = await mkdtemp(join(tmpdir(), 'nightshift-chromium-'));
  const child = spawn(
    chromium,
    ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', '--remote-debugging-pipe', `--user-data-dir=${profile}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
  );
  const input = child.stdio[3] as Writable;
  const output = child.stdio[4] as Readable;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void }>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  let buffered = Buffer.alloc(0);
  output.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    let end: number;
    while ((end = buffered.indexOf(0)) >= 0) {
      const message = JSON.parse(buffered.subarray(0, end).toString('utf8')) as {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
      };
      buffered = buffered.subarray(end + 1);
      if (message.id !== undefined) {
        const pending = waiting.get(message.id);
        waiting.delete(message.id);
        if (message.error) pending?.reject(new Error(message.error.message));
        else pending?.resolve(message.result ?? {});
      } else if (message.method) for (const listener of listeners) listener(message.method, message.params ?? {});
    }
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> => {
    const id = nextId++;
    input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
  };
  const errors: string[] = [];
  listeners.push((method, params) => {
    if (method === 'Runtime.consoleAPICalled' && (params.type === 'error' || params.type === 'assert')) {
      errors.push(`console.${String(params.type)}: ${JSON.stringify(params.args)}`);
    } else if (method === 'Runtime.exceptionThrown') {
      errors.push(`exception: ${JSON.stringify((params.exceptionDetails as Record<string, unknown>)?.exception ?? params.exceptionDetails)}`);
    } else if (method === 'Log.entryAdded') {
      const entry = params.entry as { level: string; text: string; url?: string };
      if (entry.level === 'error') errors.push(`log: ${entry.text} ${entry.url ?? ''}`);
    }
  });

  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      // Asked to close, the browser exits; one that does not within seconds is killed.
      void send('Browser.close').catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(profile, { recursive: true, force: true });
  };
  try {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    for (const domain of ['Runtime', 'Log', 'Page']) await send(`${domain}.enable`, {}, sessionId);
    await send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }, sessionId);
    const evaluate = async <T>(expression: string): Promise<T> => {
      const { result, exceptionDetails } = (await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId)) as {
        result: { value: T };
        exceptionDetails?: unknown;
      };
      if (exceptionDetails) throw new Error(`evaluation failed: ${JSON.stringify(exceptionDetails)}`);
      return result.value;
    };
    await send('Page.navigate', { url }, sessionId);
    const deadline = Date.now() + timeoutMs;
    while (!(await evaluate<boolean>(`document.readyState === 'complete' && Boolean(${readyExpression})`))) {
      if (Date.now() > deadline) throw new Error(`the page was not ready within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return {
      errors,
      evaluate,
      screenshot: async () => Buffer.from(String((await send('Page.captureScreenshot', { format: 'png' }, sessionId)).data), 'base64'),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A PNG's width and height, from its header. */
export function pngSize(png: Buffer): { width: number; height: number } {
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
