/**
 * GrammarMatcher behaviour: stop tokens (which ones a TokenizerInfo detects by itself, whether the
 * mask allows them only once the output is complete, isTerminated() after one), the
 * terminateWithoutStopToken option, overrideStopTokens, rejected tokens, rollBack, reset,
 * findJumpForwardString, special tokens written as their text vs as '' in the vocabulary, padding
 * rows, and partial UTF-8 tokens. Uses the synthetic 151,936-row vocabulary of vocab.ts.
 *
 * Run: npm run build && node dist/tools/xgrammar-eval/matcher.js [--json OUT]
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allowedIds, captureOutput, fatalMessage, isAllowed, xg, type CompiledGrammar, type GrammarMatcher } from './common.js';
import { ENDOFTEXT, IM_END, IM_START, QWEN2VL_LOGITS, buildVocab, decodeToken, encodeText } from './vocab.js';

type Facts = Record<string, unknown>;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonOut = (() => { const i = args.indexOf('--json'); return i >= 0 ? args[i + 1] : undefined; })();
  const x = xg();
  const literal = buildVocab({ blankSpecials: false });
  const blank = buildVocab({ blankSpecials: true });
  const index = new Map<string, number>();
  literal.encoded.forEach((t, i) => { if (t && !index.has(t)) index.set(t, i); });
  const id = (text: string) => { const v = index.get(encodeText(text)); if (v === undefined) throw new Error(`no token for ${JSON.stringify(text)}`); return v; };
  const visionStart = index.get('<|vision_start|>')!;
  const facts: Facts = {};
  const names = (mask: Int32Array, limit = 12) => {
    const ids = allowedIds(mask, QWEN2VL_LOGITS);
    return { count: ids.length, first: ids.slice(0, limit).map((i) => `${i}:${JSON.stringify(decodeToken(literal.encoded[i]!))}`) };
  };
  const feed = (m: GrammarMatcher, texts: string[]) => texts.every((t) => m.acceptToken(id(t)));

  // ---- stop tokens a TokenizerInfo finds by itself ----
  const autoInfo = await x.TokenizerInfo.createTokenizerInfo(blank.encoded, 'byte_level', false, QWEN2VL_LOGITS);
  const explicitInfo = await x.TokenizerInfo.createTokenizerInfo(blank.encoded, 'byte_level', false, QWEN2VL_LOGITS, [ENDOFTEXT, IM_END]);
  const literalInfo = await x.TokenizerInfo.createTokenizerInfo(literal.encoded, 'byte_level', false, QWEN2VL_LOGITS, [ENDOFTEXT, IM_END]);
  const schema = JSON.stringify({ type: 'object', properties: { a: { type: 'integer' }, s: { type: 'string' } }, required: ['a', 's'] });
  const compileFor = async (info: typeof autoInfo) => (await x.GrammarCompiler.createGrammarCompiler(info, false)).compileJSONSchema(schema, false, -1, [',', ':'], true);
  const gAuto = await compileFor(autoInfo);
  const gExplicit = await compileFor(explicitInfo);
  const gLiteral = await compileFor(literalInfo);
  const complete = ['{"', 'a', '":', '1', ',"', 's', '":"', 'x', '"}'];

  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gAuto);
    feed(m, complete);
    const mask = await m.getNextTokenBitmask();
    facts['stop tokens detected without stopTokenIds (vocab has <|endoftext|> and <|im_end|>)'] = names(mask);
    m.dispose();
  }

  // ---- stop token at the end / in the middle ----
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit);
    const start = await m.getNextTokenBitmask();
    facts['at the start: stop allowed'] = isAllowed(start, IM_END);
    feed(m, complete.slice(0, 4));
    const mid = await m.getNextTokenBitmask();
    facts['mid-output: stop allowed'] = isAllowed(mid, IM_END);
    facts['mid-output: acceptToken(<|im_end|>) returns'] = m.acceptToken(IM_END);
    facts['mid-output: isTerminated() after the refused stop'] = m.isTerminated();
    const again = await m.getNextTokenBitmask();
    facts['mid-output: mask unchanged after a refused token'] = again.every((w, i) => w === mid[i]);
    feed(m, complete.slice(4));
    const end = await m.getNextTokenBitmask();
    facts['after the closing brace: allowed tokens'] = names(end);
    facts['after the closing brace: isTerminated()'] = m.isTerminated();
    facts['acceptToken(<|im_end|>) at the end returns'] = m.acceptToken(IM_END);
    facts['isTerminated() after the stop token'] = m.isTerminated();
    const after = await captureOutput(() => m.getNextTokenBitmask());
    facts['getNextTokenBitmask() after termination'] = after.ok ? names(after.value!) : `throws: ${fatalMessage(after.stderr) || after.error}`;
    const acc = await captureOutput(() => m.acceptToken(id('x')));
    facts['acceptToken(any) after termination'] = acc.ok ? acc.value : `throws: ${fatalMessage(acc.stderr) || acc.error}`;
    const rb = await captureOutput(() => { m.rollBack(1); return m.isTerminated(); });
    facts['rollBack(1) after termination, then isTerminated()'] = rb.ok ? rb.value : `throws: ${fatalMessage(rb.stderr) || rb.error}`;
    if (rb.ok) facts['after that rollBack: stop allowed again'] = isAllowed(await m.getNextTokenBitmask(), IM_END);
    m.dispose();
  }

  // ---- an integer root: stop allowed while more digits are too ----
  {
    const compiler = await x.GrammarCompiler.createGrammarCompiler(explicitInfo, false);
    const g = await compiler.compileJSONSchema('{"type":"integer"}', false, -1, [',', ':'], true);
    const m = await x.GrammarMatcher.createGrammarMatcher(g);
    feed(m, ['12']);
    const mask = await m.getNextTokenBitmask();
    facts['integer root after "12": stop allowed'] = isAllowed(mask, IM_END);
    facts['integer root after "12": "3" allowed'] = isAllowed(mask, id('3'));
    m.dispose();
    g.dispose();
  }

  // ---- terminateWithoutStopToken ----
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit, undefined, true);
    feed(m, complete.slice(0, -1));
    facts['terminateWithoutStopToken: isTerminated() before the last token'] = m.isTerminated();
    const before = await m.getNextTokenBitmask();
    facts['terminateWithoutStopToken: stop allowed before the output is complete'] = isAllowed(before, IM_END);
    m.acceptToken(id('"}'));
    facts['terminateWithoutStopToken: isTerminated() right after the closing brace (no stop token)'] = m.isTerminated();
    const mask = await captureOutput(() => m.getNextTokenBitmask());
    facts['terminateWithoutStopToken: mask after completion'] = mask.ok ? names(mask.value!) : `throws: ${fatalMessage(mask.stderr) || mask.error}`;
    facts['terminateWithoutStopToken: acceptToken(<|im_end|>) after completion'] = m.acceptToken(IM_END);
    m.dispose();
  }

  // ---- overrideStopTokens ----
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit, [IM_START]);
    feed(m, complete);
    const mask = await m.getNextTokenBitmask();
    facts['overrideStopTokens [<|im_start|>]: allowed at the end'] = names(mask);
    facts['overrideStopTokens: acceptToken(<|im_end|>) at the end'] = m.acceptToken(IM_END);
    facts['overrideStopTokens: acceptToken(<|im_start|>) at the end'] = m.acceptToken(IM_START);
    facts['overrideStopTokens: isTerminated()'] = m.isTerminated();
    m.dispose();
  }

  // ---- rollBack / reset ----
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit);
    facts['getMaxRollbackTokens() with the default maxRollbackTokens'] = m.getMaxRollbackTokens();
    const masks: Int32Array[] = [];
    for (const t of complete.slice(0, 6)) { masks.push(await m.getNextTokenBitmask()); m.acceptToken(id(t)); }
    m.rollBack(3);
    const now3 = await m.getNextTokenBitmask();
    facts['rollBack(3): mask equals the mask 3 tokens earlier'] = now3.every((w, i) => w === masks[3]![i]);
    feed(m, complete.slice(3));
    facts['rollBack(3) then re-feed and stop: terminated'] = m.acceptToken(IM_END) && m.isTerminated();
    const over = await captureOutput(() => m.rollBack(100));
    facts['rollBack(100) beyond the history'] = over.ok ? 'no error' : `throws: ${fatalMessage(over.stderr) || over.error}`;
    m.reset();
    const fresh = await m.getNextTokenBitmask();
    facts['reset(): mask equals the initial mask'] = fresh.every((w, i) => w === masks[0]![i]);
    const m5 = await x.GrammarMatcher.createGrammarMatcher(gExplicit, undefined, false, 2);
    facts['maxRollbackTokens=2: getMaxRollbackTokens()'] = m5.getMaxRollbackTokens();
    feed(m5, complete.slice(0, 5));
    const r5 = await captureOutput(() => m5.rollBack(4));
    facts['maxRollbackTokens=2: rollBack(4)'] = r5.ok ? 'no error' : `throws: ${fatalMessage(r5.stderr) || r5.error}`;
    m5.dispose();
    m.dispose();
  }

  // ---- jump-forward ----
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit);
    facts['findJumpForwardString() at the start'] = m.findJumpForwardString();
    feed(m, ['{"', 'a', '":', '1']);
    facts['findJumpForwardString() after {"a":1'] = m.findJumpForwardString();
    m.dispose();
  }

  // ---- special tokens as text vs '' ----
  for (const [label, g] of [['special tokens as their text', gLiteral], ['special tokens as \'\'', gExplicit]] as [string, CompiledGrammar][]) {
    const m = await x.GrammarMatcher.createGrammarMatcher(g);
    feed(m, ['{"', 'a', '":', '1', ',"', 's', '":"']);
    const mask = await m.getNextTokenBitmask();
    const specials = literal.encoded.map((t, i) => [t, i] as const).filter(([t, i]) => i >= literal.specialStart && i < literal.tokens && t !== '<|endoftext|>' && t !== '<|im_end|>');
    facts[`${label}: non-stop special tokens allowed inside a JSON string`] = specials.filter(([, i]) => isAllowed(mask, i)).length + ` of ${specials.length}`;
    facts[`${label}: <|vision_start|> allowed inside a JSON string`] = isAllowed(mask, visionStart);
    facts[`${label}: <|im_start|> allowed inside a JSON string`] = isAllowed(mask, IM_START);
    facts[`${label}: padding rows (151646..151935) allowed`] = allowedIds(mask, QWEN2VL_LOGITS).filter((i) => i >= literal.tokens).length;
    facts[`${label}: tokens allowed inside the string`] = allowedIds(mask, QWEN2VL_LOGITS).length;
    m.dispose();
  }
  {
    const m = await x.GrammarMatcher.createGrammarMatcher(gExplicit);
    feed(m, ['{"', 'a', '":', '1', ',"', 's', '":"']);
    const mask = await m.getNextTokenBitmask();
    facts['bits beyond the vocabulary (word tail) are 0'] = (mask[mask.length - 1]! >>> (QWEN2VL_LOGITS & 31)) === 0 || (QWEN2VL_LOGITS & 31) === 0;
    facts['bitmask length (Int32 words)'] = mask.length;
    // Partial UTF-8: the first two bytes of a CJK character.
    const partialId = literal.encoded.findIndex((t, i) => i > 255 && [...t].length === 2 && /^[\u00e4-\u00e9]/.test(t));
    facts['partial UTF-8 token allowed inside a string'] = isAllowed(mask, partialId);
    m.acceptToken(partialId);
    const next = await m.getNextTokenBitmask();
    const nextIds = allowedIds(next, QWEN2VL_LOGITS);
    facts['after a partial UTF-8 token: tokens allowed'] = nextIds.length;
    facts['after a partial UTF-8 token: sample'] = nextIds.slice(0, 6).map((i) => JSON.stringify(literal.encoded[i]));
    m.dispose();
  }

  for (const [k, v] of Object.entries(facts)) console.log(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(facts, null, 2));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
