// Types of markdown.js for the Node unit test (the page loads the JavaScript as it is).
export interface MdElement {
  tag: string;
  children: MdNode[];
  start?: number;
}
export type MdNode = MdElement | string;
export const ALLOWED_TAGS: Set<string>;
export function parseInline(s: string): MdNode[];
export function parseMarkdown(text: string): MdElement[];
export function renderMarkdown(
  parent: { textContent: string | null; appendChild(n: unknown): unknown },
  nodes: MdNode[],
  doc: { createElement(tag: string): unknown; createTextNode(text: string): unknown },
): void;
