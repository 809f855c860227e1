import { SamplingParams } from '../engine/samplingParams.js';
import type { ContentPart } from '../tokenizer/chatMessages.js';
import { ModelCliOptions, loadEngine } from './loadEngine.js';

export interface GenerateCliOptions extends ModelCliOptions {
  image: string[];
  prompt: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  topLogprobs?: number;
  json?: boolean;
}

/** `iris generate`: one user turn (images then text), rendered with the model's chat template. */
export async function runGenerate(o: GenerateCliOptions): Promise<void> {
  const engine = await loadEngine(o);
  try {
    const content: ContentPart[] = [...o.image.map((url) => ({ type: 'image_url' as const, image_url: { url } })), { type: 'text', text: o.prompt }];
    const sampling: Partial<SamplingParams> = {
      maxNewTokens: o.maxTokens,
      temperature: o.temperature,
      topP: o.topP,
      topK: o.topK,
      seed: o.seed,
      topLogprobs: o.topLogprobs ?? null,
    };
    const input = { messages: [{ role: 'user' as const, content }], sampling };
    if (o.json) {
      const r = await engine.generate(input);
      const out = {
        text: r.text,
        token_ids: r.tokenIds,
        prompt_tokens: r.usage.promptTokens,
        finish_reason: r.finishReason,
        logprobs: r.logprobs?.map((l) => ({ token_id: l.tokenId, logprob: l.logprob, top: l.top.map((t) => ({ token_id: t.tokenId, logprob: t.logprob })) })) ?? null,
      };
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      for await (const c of engine.generateStream(input)) process.stdout.write(c.text);
      process.stdout.write('\n');
    }
  } finally {
    await engine.shutdown();
  }
}
