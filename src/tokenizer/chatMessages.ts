import { InvalidRequestError } from '../errors.js';

/**
 * OpenAI chat messages in, Hugging Face template messages out. Images are cut out of the
 * messages here (the template only needs a bare {type: 'image'} marker) and listed in the order
 * they appear, which is the order the template writes their placeholders.
 */

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';
const ROLES: ReadonlySet<string> = new Set<ChatRole>(['system', 'user', 'assistant', 'tool']);

export interface TextPart {
  type: 'text';
  text: string;
}
export interface ImageUrlPart {
  type: 'image_url';
  image_url: { url: string; detail?: 'auto' | 'low' | 'high' } | string;
}
/** The Hugging Face form: the source is in `image` or `url` (a URL or data URI). */
export interface ImagePart {
  type: 'image';
  image?: string;
  url?: string;
  [key: string]: unknown;
}
export type ContentPart = TextPart | ImageUrlPart | ImagePart;

export interface ChatMessage {
  role: ChatRole;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
  [key: string]: unknown;
}

/** One image referenced by the conversation, in prompt order. */
export interface ImageRef {
  url: string;
  detail?: string;
  messageIndex: number;
  partIndex: number;
}

/**
 * How a template wants message content (vLLM's --chat-template-content-format):
 * 'openai' = a list of parts (the template loops over content), 'string' = plain text.
 */
export type ContentFormat = 'string' | 'openai';

/** Which messages' string content a template is given as a list of one text part. */
export type WrapStrings = 'none' | 'nonSystem' | 'all';

export interface PrepareOptions {
  format: ContentFormat;
  /**
   * 'openai' format only: also turn string content into [{type:'text'}] (templates that loop over
   * content without checking): for every message but system ones, or for all.
   */
  wrapStringContent?: WrapStrings;
  /** 'string' format only: text standing for one image, put before the message text as vLLM does. */
  imagePlaceholder?: string;
  /** 'string' format only: images stay where they are among the parts (parts joined by newlines). */
  imagesInOrder?: boolean;
}

export type TemplateMessage = Record<string, unknown>;

export interface PreparedMessages {
  messages: TemplateMessage[];
  images: ImageRef[];
}

function bad(msg: string, param: string): never {
  throw new InvalidRequestError(msg, param);
}

function imageOf(part: Record<string, unknown>, where: string): { url: string; detail?: string } {
  if (part.type === 'image_url') {
    const iu = part.image_url;
    if (typeof iu === 'string' && iu) return { url: iu };
    if (iu && typeof iu === 'object') {
      const { url, detail } = iu as { url?: unknown; detail?: unknown };
      if (typeof url === 'string' && url) {
        return typeof detail === 'string' ? { url, detail } : { url };
      }
    }
    bad(`${where}.image_url.url must be a non-empty string`, `${where}.image_url`);
  }
  const src = typeof part.image === 'string' ? part.image : typeof part.url === 'string' ? part.url : '';
  if (!src) bad(`${where}: an image part needs 'image' or 'url'`, where);
  return { url: src };
}

/**
 * OpenAI sends tool-call arguments as a JSON string; HF templates (e.g. Qwen2.5's `| tojson`)
 * expect a mapping, so parse them as vLLM does. Invalid JSON is left as the string.
 */
function normaliseToolCalls(calls: unknown[]): unknown[] {
  return calls.map((c) => {
    if (!c || typeof c !== 'object') return c;
    const fn = (c as { function?: unknown }).function;
    if (!fn || typeof fn !== 'object') return c;
    const args = (fn as { arguments?: unknown }).arguments;
    if (typeof args !== 'string') return c;
    try {
      return { ...c, function: { ...fn, arguments: JSON.parse(args) } };
    } catch {
      return c;
    }
  });
}

export function prepareMessages(messages: readonly ChatMessage[], opts: PrepareOptions): PreparedMessages {
  if (!Array.isArray(messages) || messages.length === 0) bad('messages must be a non-empty array', 'messages');
  const images: ImageRef[] = [];
  const out: TemplateMessage[] = messages.map((m, mi) => {
    const where = `messages[${mi}]`;
    if (!m || typeof m !== 'object') bad(`${where} must be an object`, where);
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      bad(`${where}.role must be one of system, user, assistant, tool`, `${where}.role`);
    }
    const msg: TemplateMessage = {};
    for (const [k, v] of Object.entries(m)) if (v !== undefined && v !== null && k !== 'content') msg[k] = v;
    if (Array.isArray(m.tool_calls)) msg.tool_calls = normaliseToolCalls(m.tool_calls);

    const content = m.content;
    if (content === undefined || content === null) {
      msg.content = opts.format === 'openai' ? [] : '';
      return msg;
    }
    if (typeof content === 'string') {
      const wrap = opts.wrapStringContent === 'all' || (opts.wrapStringContent === 'nonSystem' && m.role !== 'system');
      msg.content = opts.format === 'openai' && wrap ? [{ type: 'text', text: content }] : content;
      return msg;
    }
    if (!Array.isArray(content)) bad(`${where}.content must be a string or an array of parts`, `${where}.content`);

    const parts: Record<string, unknown>[] = [];
    const texts: string[] = [];
    const inOrder: string[] = [];
    let nImages = 0;
    content.forEach((p, pi) => {
      const pw = `${where}.content[${pi}]`;
      if (!p || typeof p !== 'object') bad(`${pw} must be an object`, pw);
      const part = p as unknown as Record<string, unknown>;
      if (part.type === 'text') {
        if (typeof part.text !== 'string') bad(`${pw}.text must be a string`, `${pw}.text`);
        parts.push({ type: 'text', text: part.text });
        texts.push(part.text);
        inOrder.push(part.text);
      } else if (part.type === 'image_url' || part.type === 'image') {
        images.push({ ...imageOf(part, pw), messageIndex: mi, partIndex: pi });
        parts.push({ type: 'image' });
        inOrder.push(opts.imagePlaceholder ?? '');
        nImages++;
      } else {
        bad(`${pw}.type '${String(part.type)}' is not supported (text, image_url)`, `${pw}.type`);
      }
    });

    if (opts.format === 'openai') {
      msg.content = parts;
    } else {
      if (nImages > 0 && opts.imagePlaceholder === undefined) {
        bad(`${where}: this chat template takes string content and has no image placeholder`, `${where}.content`);
      }
      // vLLM's string form: one placeholder per image, then the text parts, joined by newlines
      // (or, where the model's own chat code does so, the parts in their order).
      msg.content = opts.imagesInOrder ? inOrder.join('\n') : [...Array<string>(nImages).fill(opts.imagePlaceholder ?? ''), ...texts].join('\n');
    }
    return msg;
  });
  return { messages: out, images };
}
