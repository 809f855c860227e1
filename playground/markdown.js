// @ts-check
/**
 * A small Markdown subset for model answers: paragraphs, line breaks, **bold**, *italic*,
 * `inline code`, fenced code blocks and flat bullet/numbered lists.
 *
 * parseMarkdown turns text into a tree of plain objects; renderMarkdown builds DOM from it with
 * createElement and text nodes only, from a fixed set of tags, so model text can never become
 * markup. Unclosed markers (common mid-stream) stay literal text.
 */

/** @typedef {{ tag: string, children: MdNode[], start?: number }} MdElement */
/** @typedef {MdElement | string} MdNode */

/** The only elements the renderer will ever create. */
export const ALLOWED_TAGS = new Set(['p', 'br', 'strong', 'em', 'code', 'pre', 'ul', 'ol', 'li']);

const FENCE = /^\s{0,3}(`{3,})/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;

/**
 * @param {string} tag
 * @param {MdNode[]} children
 * @returns {MdElement}
 */
const el = (tag, children) => ({ tag, children });

/**
 * Inline markup of one line (or one list item / paragraph part).
 * @param {string} s
 * @returns {MdNode[]}
 */
export function parseInline(s) {
  /** @type {MdNode[]} */
  const out = [];
  let text = '';
  const flush = () => {
    if (text) out.push(text);
    text = '';
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length && '\\`*_'.includes(s[i + 1] ?? '')) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      const end = s.indexOf('`', i + 1);
      if (end > i + 1) {
        flush();
        out.push(el('code', [s.slice(i + 1, end)]));
        i = end + 1;
        continue;
      }
    }
    if (c === '*' && s[i + 1] === '*') {
      let end = s.indexOf('**', i + 2);
      // In `***` the bold ends with the last two stars; the first closes an inner italic.
      while (end >= 0 && s[end + 2] === '*') end++;
      if (end > i + 2 && s[i + 2] !== ' ' && s[end - 1] !== ' ') {
        flush();
        out.push(el('strong', parseInline(s.slice(i + 2, end))));
        i = end + 2;
        continue;
      }
    }
    if (c === '*' && s[i + 1] !== '*' && s[i + 1] !== ' ') {
      const end = findSingleStar(s, i + 1);
      if (end > i + 1 && s[end - 1] !== ' ') {
        flush();
        out.push(el('em', parseInline(s.slice(i + 1, end))));
        i = end + 1;
        continue;
      }
    }
    text += c;
    i++;
  }
  flush();
  return out;
}

/**
 * The next lone `*` from `from` (a `**` pair inside italics is bold, not the end).
 * @param {string} s
 * @param {number} from
 */
function findSingleStar(s, from) {
  for (let j = from; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '*') {
      if (s[j + 1] === '*') j++;
      else return j;
    }
  }
  return -1;
}

/**
 * Lines joined by <br>, each with its inline markup.
 * @param {string[]} lines
 * @returns {MdNode[]}
 */
function linesWithBreaks(lines) {
  /** @type {MdNode[]} */
  const out = [];
  lines.forEach((line, k) => {
    if (k > 0) out.push(el('br', []));
    out.push(...parseInline(line));
  });
  return out;
}

/**
 * @param {string} text
 * @returns {MdElement[]} block elements (p, pre, ul, ol)
 */
export function parseMarkdown(text) {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  /** @type {MdElement[]} */
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    const fence = FENCE.exec(line);
    if (fence) {
      // Code runs to the matching fence, or to the end while the answer is still streaming.
      const marker = fence[1] ?? '```';
      const code = [];
      i++;
      while (i < lines.length && !(lines[i] ?? '').trim().startsWith(marker)) code.push(lines[i++]);
      i++;
      blocks.push(el('pre', [el('code', [code.join('\n')])]));
      continue;
    }
    if (!line.trim()) {
      i++;
      continue;
    }
    const ordered = NUMBERED.exec(line);
    if (ordered || BULLET.test(line)) {
      const pattern = ordered ? NUMBERED : BULLET;
      const list = el(ordered ? 'ol' : 'ul', []);
      if (ordered && ordered[1] !== '1') list.start = Number(ordered[1]);
      /** @type {string[][]} */
      const items = [];
      while (i < lines.length) {
        const l = lines[i] ?? '';
        const m = pattern.exec(l);
        if (m) items.push([m[m.length - 1] ?? '']);
        // A non-blank line that starts no other block continues the item.
        else if (l.trim() && !FENCE.test(l) && !BULLET.test(l) && !NUMBERED.test(l) && items.length) items[items.length - 1]?.push(l.trim());
        else break;
        i++;
      }
      list.children = items.map((item) => el('li', linesWithBreaks(item)));
      blocks.push(list);
      continue;
    }
    const para = [];
    while (i < lines.length) {
      const l = lines[i] ?? '';
      if (!l.trim() || FENCE.test(l) || BULLET.test(l) || NUMBERED.test(l)) break;
      para.push(l);
      i++;
    }
    blocks.push(el('p', linesWithBreaks(para)));
  }
  return blocks;
}

/**
 * Replaces `parent`'s children with the rendered tree. Only DOM calls that cannot parse markup
 * are used: createElement (from ALLOWED_TAGS), createTextNode, appendChild.
 * @param {{ textContent: string | null, appendChild(n: any): any }} parent
 * @param {MdNode[]} nodes
 * @param {{ createElement(tag: string): any, createTextNode(text: string): any }} doc
 */
export function renderMarkdown(parent, nodes, doc) {
  parent.textContent = '';
  appendNodes(parent, nodes, doc);
}

/**
 * @param {{ appendChild(n: any): any }} parent
 * @param {MdNode[]} nodes
 * @param {{ createElement(tag: string): any, createTextNode(text: string): any }} doc
 */
function appendNodes(parent, nodes, doc) {
  for (const node of nodes) {
    if (typeof node === 'string') {
      parent.appendChild(doc.createTextNode(node));
      continue;
    }
    if (!ALLOWED_TAGS.has(node.tag)) throw new Error(`markdown: unexpected tag ${node.tag}`);
    const e = doc.createElement(node.tag);
    if (node.tag === 'ol' && node.start !== undefined) e.start = node.start;
    appendNodes(e, node.children, doc);
    parent.appendChild(e);
  }
}
