import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../helpers/paths.js';

// The page's own module, loaded from the shipped folder as the browser loads it.
const md: typeof import('../../playground/markdown.js') = await import(pathToFileURL(join(projectRoot, 'playground', 'markdown.js')).href);
type MdNode = import('../../playground/markdown.js').MdNode;

/** A DOM with only the calls the renderer may use: anything that parses markup throws. */
class FakeNode {
  children: FakeNode[] = [];
  text = '';
  constructor(
    readonly kind: 'element' | 'text',
    readonly tag: string,
  ) {}
  [key: string]: unknown;
  appendChild(n: FakeNode) {
    this.children.push(n);
    return n;
  }
  set textContent(v: string) {
    if (this.kind === 'text') this.text = v;
    else {
      assert.equal(v, '', 'only clearing through textContent');
      this.children = [];
    }
  }
  get textContent(): string {
    return this.kind === 'text' ? this.text : this.children.map((c) => c.textContent).join('');
  }
  set innerHTML(_v: string) {
    throw new Error('innerHTML used');
  }
  set outerHTML(_v: string) {
    throw new Error('outerHTML used');
  }
  insertAdjacentHTML() {
    throw new Error('insertAdjacentHTML used');
  }
  setAttribute() {
    throw new Error('setAttribute used');
  }
  /** Serialized as the tags and text it holds, text escaped as a browser would. */
  html(): string {
    if (this.kind === 'text') return this.text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const start = typeof this['start'] === 'number' ? ` start="${this['start']}"` : '';
    const inner = this.children.map((c) => c.html()).join('');
    return this.tag === 'br' ? '<br>' : `<${this.tag}${start}>${inner}</${this.tag}>`;
  }
}

const fakeDocument = {
  created: [] as string[],
  createElement(tag: string) {
    this.created.push(tag);
    return new FakeNode('element', tag);
  },
  createTextNode(text: string) {
    const n = new FakeNode('text', '#text');
    n.text = text;
    return n;
  },
};

/** Markdown to the HTML the page would show. */
function html(text: string): string {
  const root = new FakeNode('element', 'div');
  md.renderMarkdown(root, md.parseMarkdown(text), fakeDocument);
  return root.children.map((c) => c.html()).join('');
}

describe('playground markdown', () => {
  test('paragraphs and line breaks', () => {
    assert.equal(html('one\ntwo\n\nthree'), '<p>one<br>two</p><p>three</p>');
    assert.equal(html('a\r\nb'), '<p>a<br>b</p>');
    assert.equal(html(''), '');
    assert.equal(html('\n\n  \n'), '');
  });

  test('bold, italic and inline code', () => {
    assert.equal(html('a **b** *c* `d`'), '<p>a <strong>b</strong> <em>c</em> <code>d</code></p>');
    assert.equal(html('**bold *and italic***'), '<p><strong>bold <em>and italic</em></strong></p>');
    assert.equal(html('*it **bold** it*'), '<p><em>it <strong>bold</strong> it</em></p>');
    // Markup inside code is literal.
    assert.equal(html('`**not bold**`'), '<p><code>**not bold**</code></p>');
  });

  test('unclosed or spaced markers stay literal (as mid-stream)', () => {
    assert.equal(html('**half'), '<p>**half</p>');
    assert.equal(html('2 * 3 * 4'), '<p>2 * 3 * 4</p>');
    assert.equal(html('a `b'), '<p>a `b</p>');
    assert.equal(html('\\*not italic\\*'), '<p>*not italic*</p>');
  });

  test('fenced code blocks keep their text, closed or not', () => {
    assert.equal(html('before\n```js\nif (a < b) {\n  **x**\n}\n```\nafter'), '<p>before</p><pre><code>if (a &lt; b) {\n  **x**\n}</code></pre><p>after</p>');
    assert.equal(html('```\nstill streaming'), '<pre><code>still streaming</code></pre>');
  });

  test('bullet and numbered lists', () => {
    assert.equal(html('- a\n- **b**\n* c'), '<ul><li>a</li><li><strong>b</strong></li><li>c</li></ul>');
    assert.equal(html('1. one\n2. two\n   more'), '<ol><li>one</li><li>two<br>more</li></ol>');
    assert.equal(html('3) three\n4) four'), '<ol start="3"><li>three</li><li>four</li></ol>');
    assert.equal(html('Shapes:\n- star\n- heart\n\nDone.'), '<p>Shapes:</p><ul><li>star</li><li>heart</li></ul><p>Done.</p>');
    assert.equal(html('- a\n1. b'), '<ul><li>a</li></ul><ol><li>b</li></ol>');
  });

  test('HTML in model text is text, never elements', () => {
    fakeDocument.created = [];
    const evil = '<img src=x onerror="alert(1)"> <script>alert(2)</script> **<b>x</b>**\n```\n<iframe src="//evil">\n```';
    const out = html(evil);
    assert.deepEqual(new Set(fakeDocument.created), new Set(['p', 'strong', 'br', 'pre', 'code'].filter((t) => out.includes(`<${t}`))));
    for (const tag of fakeDocument.created) assert.ok(md.ALLOWED_TAGS.has(tag), tag);
    assert.ok(out.includes('&lt;img src=x onerror="alert(1)"&gt;'), out);
    assert.ok(out.includes('&lt;script&gt;alert(2)&lt;/script&gt;'), out);
    assert.ok(out.includes('<strong>&lt;b&gt;x&lt;/b&gt;</strong>'), out);
  });

  test('the renderer refuses a tag outside the allowed set', () => {
    const root = new FakeNode('element', 'div');
    const bad: MdNode[] = [{ tag: 'script', children: ['x'] }];
    assert.throws(() => md.renderMarkdown(root, bad, fakeDocument), /unexpected tag script/);
  });

  test('rendering again replaces the previous content', () => {
    const root = new FakeNode('element', 'div');
    md.renderMarkdown(root, md.parseMarkdown('first'), fakeDocument);
    md.renderMarkdown(root, md.parseMarkdown('second **part**'), fakeDocument);
    assert.equal(root.textContent, 'second part');
    assert.equal(root.children.length, 1);
  });

  test('every prefix of a streamed answer parses (no throw, text kept)', () => {
    const answer = 'Here:\n\n1. **red** circle\n2. *blue* `square`\n\n```\ncode <b>\n```\nend';
    for (let i = 0; i <= answer.length; i++) {
      const root = new FakeNode('element', 'div');
      md.renderMarkdown(root, md.parseMarkdown(answer.slice(0, i)), fakeDocument);
      const visible = root.textContent.replace(/\s/g, '');
      // Markers may vanish, letters never.
      const letters = answer.slice(0, i).replace(/[\s*`\d.]/g, '');
      assert.equal(visible.replace(/[*`\d.]/g, ''), letters, `prefix ${i}`);
    }
  });
});
