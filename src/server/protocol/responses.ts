import { GenerateResult, TokenLogprobInfo, Usage } from '../../engine/engine.js';
import type { ToolCallParser } from '../../tools/index.js';
import { chatMessageParts, toolFinishReason } from './tools.js';

/** OpenAI/SGLang response shapes, built from engine results. */

export function usageJson(u: Usage, cachedTokens = 0) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.totalTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
    reasoning_tokens: 0,
  };
}

/** choices[].logprobs of a chat completion. */
export function chatLogprobs(lps: TokenLogprobInfo[] | null, topN: number | null) {
  if (!lps || topN === null) return null;
  return {
    content: lps.map((l) => ({
      token: l.token,
      logprob: l.logprob,
      bytes: l.bytes,
      top_logprobs: l.top.slice(0, topN).map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
    })),
  };
}

/** choices[].logprobs of a (legacy) completion. */
export function completionLogprobs(lps: TokenLogprobInfo[] | null, topN: number | null, textOffset0: number) {
  if (!lps || topN === null) return null;
  let off = textOffset0;
  const text_offset: number[] = [];
  for (const l of lps) {
    text_offset.push(off);
    off += l.token.length;
  }
  return {
    tokens: lps.map((l) => l.token),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.slice(0, topN).map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}

export function finishReasonJson(r: GenerateResult['finishReason']): string {
  return r === 'abort' ? 'abort' : r;
}

/** A chat completion; with a tool-call parser, each choice's calls are read out of its text. */
export function chatCompletionJson(id: string, created: number, model: string, results: GenerateResult[], topN: number | null, cached: number, parser: ToolCallParser | null = null) {
  const usage = sumUsage(results);
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: results.map((r, index) => {
      const { content, toolCalls } = chatMessageParts(r.text, parser);
      return {
        index,
        message: { role: 'assistant', content, reasoning_content: null, tool_calls: toolCalls },
        logprobs: chatLogprobs(r.logprobs, topN),
        finish_reason: toolFinishReason(finishReasonJson(r.finishReason), toolCalls !== null),
        matched_stop: r.matchedStop,
      };
    }),
    usage: usageJson(usage, cached),
    metadata: { weight_version: 'default' },
  };
}

export function sumUsage(results: Array<{ usage: Usage }>): Usage {
  const prompt = results[0]?.usage.promptTokens ?? 0;
  const completion = results.reduce((a, r) => a + r.usage.completionTokens, 0);
  return { promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion };
}
