import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Engine } from '../engine/engine.js';
import type { ChatMessage, ContentPart } from '../tokenizer/chatMessages.js';
import { ModelCliOptions, loadEngine } from './loadEngine.js';

export interface ChatCliOptions extends ModelCliOptions {
  /** A running Iris (or any OpenAI-compatible server) instead of a local model. */
  url?: string;
  apiKey?: string;
  image: string[];
  system?: string;
  maxTokens: number;
  temperature?: number;
  seed?: number;
}

const HELP = `Commands:
  /image PATH_OR_URL  attach an image to your next message (repeat for several)
  /clear              forget the conversation and attached images
  /help               this text
  /exit               leave (also Ctrl-D; Ctrl-C stops an answer, twice leaves)
`;

/** Where answers come from: a local engine or a server's chat completions API. */
interface Backend {
  /** Streams the answer's text; ends early when `signal` aborts. */
  answer(messages: ChatMessage[], signal: AbortSignal, onText: (t: string) => void): Promise<void>;
  close(): Promise<void>;
}

const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif', '.bmp': 'image/bmp', '.tif': 'image/tiff', '.tiff': 'image/tiff' };

/** An image argument as a URL: http(s) and data: URLs as they are, a local file as a data: URI (a server cannot read the client's files). */
function imageUrl(arg: string): string {
  if (/^(https?|data):/i.test(arg)) return arg;
  const path = resolve(arg.replace(/^file:\/\//, ''));
  const bytes = readFileSync(path);
  return `data:${MIME[extname(path).toLowerCase()] ?? 'application/octet-stream'};base64,${bytes.toString('base64')}`;
}

function localBackend(engine: Engine, o: ChatCliOptions): Backend {
  return {
    async answer(messages, signal, onText) {
      const sampling = { maxNewTokens: o.maxTokens, temperature: o.temperature, seed: o.seed };
      for await (const c of engine.generateStream({ messages, sampling, signal })) onText(c.text);
    },
    close: () => engine.shutdown(),
  };
}

function remoteBackend(url: string, o: ChatCliOptions): Backend {
  const endpoint = `${url.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/chat/completions`;
  return {
    async answer(messages, signal, onText) {
      const res = await fetch(endpoint, {
        method: 'POST',
        signal,
        headers: { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
        body: JSON.stringify({ messages, stream: true, max_tokens: o.maxTokens, temperature: o.temperature, seed: o.seed }),
      });
      if (!res.ok || !res.body) {
        const text = await res.text();
        let message = text;
        try {
          message = (JSON.parse(text) as { message?: string; error?: { message?: string } }).message ?? JSON.parse(text).error?.message ?? text;
        } catch {
          // not JSON: the body as it is
        }
        throw new Error(`${res.status}: ${message}`);
      }
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('');
          if (!data || data === '[DONE]') continue;
          const json = JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }>; error?: { message?: string }; message?: string };
          if (json.error || (json.message && !json.choices)) throw new Error(json.error?.message ?? json.message);
          const text = json.choices?.[0]?.delta?.content;
          if (text) onText(text);
        }
      }
    },
    close: async () => undefined,
  };
}

/**
 * `iris chat`: a conversation in the terminal, with a local model or a server (`--url`). Lines are
 * messages; `/image` attaches pictures to the next one; answers stream. Works the same with piped
 * standard input (each answer printed, then exit at /exit or the end of input).
 */
export async function runChat(o: ChatCliOptions): Promise<number> {
  const backend = o.url ? remoteBackend(o.url, o) : localBackend(await loadEngine(o), o);
  const interactive = process.stdin.isTTY === true;
  const out = (t: string) => process.stdout.write(t);
  const history: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
  let pending: string[] = [];
  try {
    pending = o.image.map(imageUrl);
  } catch (e) {
    process.stderr.write(`iris: ${(e as Error).message}\n`);
    await backend.close();
    return 1;
  }
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  let answering: AbortController | null = null;
  let interrupts = 0;
  let closing = false;
  rl.on('SIGINT', () => {
    // Ctrl-C stops the answer; a second one (or one at the prompt) leaves.
    if (answering && interrupts === 0) {
      interrupts++;
      answering.abort();
      return;
    }
    closing = true;
    rl.close();
  });
  if (interactive) {
    out(`Chatting with ${o.url ?? o.modelPath}. /help for commands.\n`);
    rl.setPrompt('>>> ');
    rl.prompt();
  }
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/bye') break;
      if (line === '') {
        if (interactive) rl.prompt();
        continue;
      }
      if (line === '/help' || line === '/?') out(HELP);
      else if (line === '/clear') {
        history.splice(o.system ? 1 : 0);
        pending = [];
        out('Cleared.\n');
      } else if (line.startsWith('/image')) {
        const arg = line.slice('/image'.length).trim();
        try {
          if (!arg) throw new Error('/image needs a path or URL');
          pending.push(imageUrl(arg));
          out(`Attached ${arg} (${pending.length} for the next message).\n`);
        } catch (e) {
          out(`error: ${(e as Error).message}\n`);
        }
      } else if (line.startsWith('/')) {
        out(`error: unknown command ${line.split(/\s/)[0]}; /help lists them\n`);
      } else {
        const content: ChatMessage['content'] = pending.length ? [...pending.map((url): ContentPart => ({ type: 'image_url', image_url: { url } })), { type: 'text', text: line }] : line;
        const turn: ChatMessage = { role: 'user', content };
        answering = new AbortController();
        interrupts = 0;
        let text = '';
        try {
          await backend.answer([...history, turn], answering.signal, (t) => {
            text += t;
            out(t);
          });
          // The turn is kept (with what was said, if stopped) so follow-ups can refer to its images.
          history.push(turn, { role: 'assistant', content: text });
          pending = [];
          out(answering.signal.aborted ? '\n[stopped]\n\n' : '\n\n');
        } catch (e) {
          if (answering.signal.aborted) {
            history.push(turn, { role: 'assistant', content: text });
            pending = [];
            out('\n[stopped]\n\n');
          } else {
            // A bad image would fail every later message: it is dropped with the failed turn.
            out(`${text ? '\n' : ''}error: ${(e as Error).message}${pending.length ? ' (attached images dropped)' : ''}\n\n`);
            pending = [];
          }
        } finally {
          answering = null;
        }
      }
      if (closing) break;
      if (interactive) rl.prompt();
    }
  } finally {
    rl.close();
    await backend.close();
  }
  return 0;
}
